"""The worker process's Runtime: one per process, opened on first use from the process's settings.

The embedded mode shares the service's own (`use_runtime`); a forked pool child drops the one it inherited,
whose database connections belong to its parent (`forget_runtime`, called by `workers.app` after a fork).
"""

from __future__ import annotations

from marketplace.runtime import Runtime, open_runtime
from marketplace.settings import get_settings

_runtime: Runtime | None = None


def runtime() -> Runtime:
    """This process's Runtime, opened on first use."""
    global _runtime
    if _runtime is None:
        _runtime = open_runtime(get_settings())
    return _runtime


def use_runtime(rt: Runtime) -> None:
    """Run this process's tasks on `rt` (the embedded mode: the service's own Runtime)."""
    global _runtime
    _runtime = rt


def forget_runtime() -> None:
    """Drop the Runtime (not closing it: after a fork its connections are the parent's to close)."""
    global _runtime
    _runtime = None


__all__ = ["forget_runtime", "runtime", "use_runtime"]
