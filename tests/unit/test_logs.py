"""The logs an operator reads: one access line per request with its id, one line per submission decision and
per chain event the watcher books (never a key, the pixels or the address), and the JSON format."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bsv import Network, PrivateKey
from fastapi.testclient import TestClient

from marketplace.api import create_app
from marketplace.bounties import create_bounty
from marketplace.logs import JsonFormatter, RequestIdFilter, request_id
from marketplace.runtime import Runtime, open_runtime
from marketplace.watcher import Watcher
from tests.support.settings import settings_for

USER = PrivateKey(7101, network=Network.TESTNET)
ACCESS = "marketplace.api.access_log"


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = open_runtime(settings_for(tmp_path / "home"))
    yield runtime
    runtime.close()


def lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger]


@pytest.mark.parametrize(("offered", "kept"), [("req-7f3a:b/1=", True), (None, False), ("a b", False),
                                               ("x" * 129, False), ("", False)])
def test_each_request_is_logged_once_with_its_request_id(rt: Runtime, caplog: pytest.LogCaptureFixture,
                                                         offered: str | None, kept: bool) -> None:
    api = TestClient(create_app(rt, background=False))
    caplog.set_level(logging.INFO)
    response = api.get("/bounties/41", headers={"X-Request-ID": offered} if offered is not None else {})
    rid = response.headers["x-request-id"]
    assert response.status_code == 404
    assert rid == offered if kept else re.fullmatch(r"[0-9a-f]{32}", rid)
    [line] = lines(caplog, ACCESS)
    assert re.fullmatch(rf"request {re.escape(rid)} GET /bounties/41 404 \d+\.\d ms from \S+", line.getMessage())


def test_a_forged_line_in_the_path_stays_on_one_line(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    TestClient(create_app(rt, background=False)).get("/x%0AINFO forged: paid")
    [line] = lines(caplog, ACCESS)
    assert "\n" not in line.getMessage() and "/x\\nINFO forged: paid" in line.getMessage()


def test_each_decision_and_chain_event_is_one_line_without_pixels_or_address(
        rt: Runtime, sevens: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    bounty = create_bounty(rt, [7], 500, 100_000)
    api = TestClient(create_app(rt, background=False))
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())  # as every process's handler has it (marketplace.logs)
    paid = api.post(f"/bounties/{bounty.id}/submissions", json={"pixels": sevens[0].tolist(),
                                                                 "address": USER.address()})
    refused = api.post(f"/bounties/{bounty.id}/submissions", json={"pixels": [0] * 784, "address": USER.address()})
    assert (paid.status_code, refused.status_code) == (202, 422)
    decisions = [r for r in lines(caplog, "marketplace.submissions") if "decision" in r.getMessage()]
    assert [r.getMessage() for r in decisions] == [
        f"submission decision: bounty={bounty.id} submission={paid.json()['id']} outcome=paid reason=- sats=500",
        f"submission decision: bounty={bounty.id} submission=- outcome=refused reason=wrong_digit sats=0"]
    # each decision carries the id of the request that made it, as the access log wrote it
    assert [r.request_id for r in decisions] == [paid.headers["x-request-id"], refused.headers["x-request-id"]]

    watcher = Watcher(rt)
    while watcher.run_once():
        pass
    assert rt.local_chain is not None
    rt.local_chain.mine(1)
    while watcher.run_once():
        pass
    events = [r.getMessage() for r in lines(caplog, "marketplace.watcher")]
    txid = paid.json()["txid"]
    assert f"chain event: spend txid={txid} bounty={bounty.id} submission={paid.json()['id']} digit=7" in events[0]
    assert any(re.fullmatch(r"chain event: block height=\d+ transactions=\d+ confirmed_submissions=1", e)
               for e in events)
    assert USER.address() not in caplog.text
    assert max(len(r.getMessage()) for r in caplog.records) < 300  # 784 pixel values would not fit


def test_the_json_format_is_one_object_per_line_with_the_request_id() -> None:
    formatter = JsonFormatter()
    token = request_id.set("req-1")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.LogRecord("marketplace.x", logging.ERROR, __file__, 1, "paid %d sats\nto %s",
                                       (500, "someone"), exc_info=sys.exc_info())
        record.request_id = request_id.get()
        text = formatter.format(record)
    finally:
        request_id.reset(token)
    assert "\n" not in text
    entry = json.loads(text)
    assert entry["message"] == "paid 500 sats\nto someone" and entry["level"] == "ERROR"
    assert entry["logger"] == "marketplace.x" and entry["request_id"] == "req-1"
    assert "ValueError: boom" in entry["exc"] and entry["time"].endswith("+00:00")
