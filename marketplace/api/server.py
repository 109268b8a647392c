"""Running the app under uvicorn on a socket bound first (a port in use is one sentence), with a time limit on a
request's headers.

uvicorn closes an idle keep-alive connection (`timeout_keep_alive`) but has no limit of its own on headers: a
connection that sends part of a request line and stalls, or nothing at all, stays open forever, and a few
hundred of them hold the server's file descriptors. `HeaderDeadline` is uvicorn's h11 protocol with one: headers
not complete within `header_timeout_seconds` of the connection (or of the first byte of a kept-alive connection's
next request) get a 408 and the connection is closed. The body's limit is the app's (`body_limits`).
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from marketplace.errors import InvalidRequest
from marketplace.settings import Settings


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or `InvalidRequest` in one sentence (a port in use, an unknown host)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)  # as uvicorn chooses
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InvalidRequest(f"port {port} on {host} is in use: stop what holds it, or choose another with "
                                 "--port") from None
        raise InvalidRequest(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def run(app: Any, sock: socket.socket, settings: Settings) -> None:
    """Serve `app` on the bound socket until interrupted (uvicorn's own signal handling)."""
    timeout = settings.header_timeout_seconds

    class Protocol(HeaderDeadline):
        header_timeout = timeout

    # log_config=None: uvicorn's loggers keep the process's set-up (marketplace.logs: its format, JSON or text);
    # its own access log stays off (below INFO): the app writes one (marketplace.api.access_log)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", log_config=None, http=Protocol)).run(sockets=[sock])


class HeaderDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request headers take over `header_timeout` s."""

    header_timeout = 10.0
    _header_timer: asyncio.TimerHandle | None = None
    _partial = False  # part of the next request arrived (a silent connection is closed without an answer)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # still waiting for a request's headers
            self._partial = True
            if self._header_timer is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        self._partial = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._partial and self.conn.our_state is h11.IDLE:
            body = json.dumps({"detail": f"the request's headers did not arrive within {self.header_timeout:g} s"})
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                 b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body.encode()))
        self.transport.close()


__all__ = ["HeaderDeadline", "listen", "run"]
