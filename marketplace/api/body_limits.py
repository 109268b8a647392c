"""A request's body read within a size and a time limit, as a stream (ASGI middleware, outermost in the app).

The routes read the body through this middleware's `receive`: past `max_bytes` it raises `RequestTooLarge`
(a declared Content-Length over the limit at the first read, so nothing is read), and past the deadline
`RequestTooSlow`; the app's error handlers answer 413 and 408. A client that sends its whole body before
reading (Python's urllib, most scripts) would see a broken pipe if the server answered and closed with its body
unread, so before any answer goes out the rest of the body is read and dropped, up to `drain_bytes` and within
the deadline, and the connection is then closed. Memory stays bounded: nothing past the limit is kept.
"""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace.errors import RequestTooLarge, RequestTooSlow

FORM_ROOM = 10_000  # a multipart form's boundaries and fields, or JSON's punctuation, beside the image itself
CLOSE = (b"connection", b"close")

__all__ = ["FORM_ROOM", "BodyLimits"]


class BodyLimits:
    def __init__(self, app: ASGIApp, max_upload_bytes: int, drain_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_upload_bytes + FORM_ROOM
        self.image_bytes = max_upload_bytes
        self.drain_bytes = drain_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(self, scope, receive)
        await self.app(scope, body.receive, body.send_after_draining(send))


class _Body:
    """One request's body: what has been read of it, and whether it is finished."""

    def __init__(self, limits: BodyLimits, scope: Scope, receive: Receive) -> None:
        self.limits = limits
        self.upstream = receive
        self.deadline = time.monotonic() + limits.timeout
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        self.declared = int(declared) if declared.isdigit() else None
        self.expects_continue = headers.get(b"expect", b"").lower() == b"100-continue"
        self.finished = self.declared == 0 or (self.declared is None and b"transfer-encoding" not in headers)
        self.read = 0
        self.refused = False  # too large or too slow: the connection is closed after the answer

    async def receive(self) -> Message:
        if self.declared is not None and self.declared > self.limits.max_bytes:
            self.refused = True
            raise RequestTooLarge(f"the request is {self.declared:,} bytes; {self._limit()}")
        message = await self._next()
        if message["type"] == "http.request":
            self.read += len(message.get("body", b""))
            if self.read > self.limits.max_bytes:
                self.refused = True
                raise RequestTooLarge(f"the request is over {self.limits.max_bytes:,} bytes; {self._limit()}")
        return message

    def _limit(self) -> str:
        return (f"the limit is {self.limits.max_bytes:,} bytes "
                f"(an image of at most {self.limits.image_bytes:,} bytes and its form)")

    async def _next(self) -> Message:
        """The next message from the server, within the deadline."""
        try:
            message = await asyncio.wait_for(self.upstream(), max(0.0, self.deadline - time.monotonic()))
        except TimeoutError:
            self.refused = True
            raise RequestTooSlow(f"the request's body did not arrive within {self.limits.timeout:g} s") from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.finished = True
        return message

    def send_after_draining(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._drain()
                if self.refused or not self.finished:
                    message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await send(message)

        return wrapped

    async def _drain(self) -> None:
        """Read and drop the rest of the body (bounded in bytes and time), so that the client can read the answer.
        A client waiting for `100 Continue` has sent nothing: it is answered at once, as is one that declared more
        than the drain bound."""
        if self.expects_continue and self.read == 0:
            return
        if self.declared is not None and self.declared - self.read > self.limits.drain_bytes:
            return  # too much to wait for: answer, and close
        dropped = 0
        while not self.finished and dropped <= self.limits.drain_bytes:
            try:
                message = await self._next()
            except RequestTooSlow:
                return
            dropped += len(message.get("body", b""))

