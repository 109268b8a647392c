"""The daemon's heartbeat: a file under `BOUNTY_HOME` touched after every watcher step that completed.

Its modification time tells a healthcheck (`bounty health daemon`) when the watcher last got through the
chain's events and the database: a hung or failing daemon stops touching it. Only the daemon writes it.
"""

from __future__ import annotations

import time
from pathlib import Path

HEARTBEAT_FILE = "daemon.heartbeat"


def heartbeat_path(home: Path) -> Path:
    return home / HEARTBEAT_FILE


def beat(path: Path) -> None:
    """Mark a completed step now."""
    path.touch()  # creates the file, or sets an existing one's modification time to now


def forget(path: Path) -> None:
    """A starting daemon clears its predecessor's beat: it is healthy only once it has stepped itself."""
    path.unlink(missing_ok=True)


def seconds_since_beat(path: Path) -> float | None:
    """How long ago the last step completed; None when no step has since the daemon started."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None
