"""What the routes take from the app: the Runtime it serves (set by `create_app`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from marketplace.quota import ClientAddress
from marketplace.runtime import Runtime


async def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


def client_address(rt: Runtime, request: Request) -> str:
    """Who sent the request: its peer, or the address a configured trusted proxy forwarded it for."""
    return ClientAddress(rt.settings.trusted_proxy_networks).of(
        request.client.host if request.client else None, request.headers.get("x-forwarded-for"))
