"""The HTTP service's edges, against a real `bounty serve`: a body over the limit gets a 413 that an ordinary
client (one that sends its whole body before reading) receives, without the server's memory growing with the
body; a client that stalls in its headers or its body is answered 408 and disconnected within the limit; the
API's documentation page works with no network beyond the server."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Route, expect, sync_playwright

from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.processes import Process, server_env, start_server

pytestmark = pytest.mark.subprocess

BODY_BYTES = 48_000_000  # far over the 2 MB limit, within the 64 MB the server reads and drops to answer
HEADER_TIMEOUT, BODY_TIMEOUT = 2.0, 3.0
STALLED = 300  # connections at once, as in the report that found them open for good


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, str]]:
    home = tmp_path_factory.mktemp("edges") / "home"
    env = server_env(home, BOUNTY_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
                     BOUNTY_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT))
    process, url = start_server(env, home.parent / "serve.log")
    yield process, url
    process.stop()


def resident_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class PeakMemory:
    """The process's largest resident size, sampled every 10 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, resident_kb(self.pid))
            time.sleep(0.01)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def chunks(total: int, size: int = 1 << 20) -> Iterator[bytes]:
    """A JSON-looking body of `total` bytes, sent without a Content-Length (chunked)."""
    yield b'{"pixels": [' + b" " * (size - 12)
    for _ in range(total // size - 1):
        yield b" " * size


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_body_is_answered_413_and_the_client_reads_it(server: tuple[Process, str], chunked: bool) -> None:
    process, url = server
    body = chunks(BODY_BYTES) if chunked else b'{"pixels": [' + b" " * (BODY_BYTES - 12)
    request = urllib.request.Request(f"{url}/classify", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    before_kb = resident_kb(process.pid)
    with PeakMemory(process.pid) as memory, pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=60)  # sends the whole body, then reads: no broken pipe
    assert answer.value.code == 413
    detail = json.loads(answer.value.read())["detail"]
    assert "the limit is 2,010,000 bytes" in detail, detail
    grown_mb = (memory.peak_kb - before_kb) / 1024
    assert grown_mb < 16, f"the server grew by {grown_mb:.0f} MB reading a {BODY_BYTES / 1e6:.0f} MB body"
    assert process.running()


def read_answer(sock: socket.socket, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    sock.settimeout(within)
    start, received = time.monotonic(), b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - start


@pytest.mark.parametrize(("sent", "limit"), [
    (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-", HEADER_TIMEOUT),
    (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{",
     BODY_TIMEOUT),
    (b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"1\r\n{\r\n", BODY_TIMEOUT),
], ids=["headers", "body", "chunked body"])
def test_a_stalled_request_is_answered_408_and_closed(server: tuple[Process, str], sent: bytes,
                                                       limit: float) -> None:
    _, url = server
    host, port = url.removeprefix("http://").split(":")
    stalled = [socket.create_connection((host, int(port))) for _ in range(STALLED)]
    for sock in stalled:
        sock.sendall(sent)
    for sock in stalled:
        answer, waited = read_answer(sock, within=limit + 10)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"did not arrive within" in answer
    assert waited < limit + 2  # the last one too: all were answered within the limit, not one after another


def test_a_silent_connection_is_closed(server: tuple[Process, str]) -> None:
    _, url = server
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        answer, waited = read_answer(sock, within=HEADER_TIMEOUT + 10)
    assert answer == b"" and waited < HEADER_TIMEOUT + 2


@pytest.mark.browser
def test_the_api_documentation_renders_offline(server: tuple[Process, str]) -> None:
    """/docs in a real browser with every request off this server refused: Swagger UI still lists the routes."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (`make test` does it)")
    _, url = server
    off_site: list[str] = []

    def only_this_server(route: Route) -> None:
        if route.request.url.startswith(url + "/"):
            route.continue_()
        else:
            off_site.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.route("**/*", only_this_server)
            page.goto(f"{url}/docs")
            classify = page.locator(".opblock-summary-path", has_text="/classify")
            expect(classify).to_be_visible(timeout=20_000)
            classify.click()  # its documented answers: the 413 among them, with the error schema
            expect(page.locator(".responses-table .response-col_status", has_text="413")).to_be_visible()
        finally:
            browser.close()
    assert off_site == []
