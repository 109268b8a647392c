"""What the routes take from the app: the Runtime it serves (set by `create_app`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from marketplace.runtime import Runtime


async def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
