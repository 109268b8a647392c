"""The access log: one line per request, with its id.

A client's `X-Request-ID` is kept when it is sane (1 to 128 letters, digits and `._:/+=-`), otherwise one is
made; the response carries it back in `X-Request-ID`, and every line logged while the request is answered
carries it too (`marketplace.logs.request_id`), so a submission's decision can be found from its request. The
line: method, path (never the query, which may hold anything), status, milliseconds, client address.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace.logs import request_id

log = logging.getLogger(__name__)
HEADER = "x-request-id"
SANE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def choose_request_id(offered: str | None) -> str:
    """The client's id when it is sane, else a new one (32 hex digits)."""
    if offered is not None and SANE_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


class AccessLog:
    """Plain ASGI (like the rate limit), outermost, so that every answer is logged, a 413 or a 429 included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = next((v.decode("latin-1") for k, v in scope["headers"] if k == HEADER.encode()), None)
        rid = choose_request_id(offered)
        token = request_id.set(rid)
        started, status = time.perf_counter(), 500  # no answer sent at all counts as the server's failure

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            log.info("request %s %s %s %d %.1f ms from %s", rid, scope["method"], _printable(scope["path"]), status,
                     (time.perf_counter() - started) * 1000, client[0] if client else "-")
            request_id.reset(token)


def _printable(path: str) -> str:
    """A path as one line: a %0A in it must not start a forged log line."""
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")


__all__ = ["AccessLog", "choose_request_id"]
