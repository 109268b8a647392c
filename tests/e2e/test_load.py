"""The load test's core for CI: a real `bounty serve` on the embedded default (subprocess, fresh BOUNTY_HOME,
a block every second), a bounty made with the CLI, then `tests.support.load.run_load` (bench/load.py's driver
too) over HTTP with a mix of accepted, rejected and hostile submissions from concurrent clients, and the books
checked through the API, the database and the chain. The 1,000-submission run is marked slow (`make test-all`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.load import run_load
from tests.support.processes import Process, create_bounty_cli, server_env, start_server

pytestmark = pytest.mark.subprocess  # an embedded `bounty serve`

PAYOUT = 500


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict]:
    budget = getattr(request, "param", 2_000_000)
    env = server_env(tmp_path / "home")
    bounty = create_bounty_cli(env, [7], PAYOUT, budget)
    process: Process | None = None
    try:
        process, url = start_server(env, tmp_path / "serve.log")
        yield {"url": url, "bounty": bounty, "home": tmp_path / "home", "log": tmp_path / "serve.log"}
    finally:
        if process is not None:
            process.stop()


def _check(result: dict, accepted: int, rejected: int, hostile: int) -> None:
    assert result["verdict"] == "pass", result["failures"]
    by_class = result["by_class"]
    assert by_class["accepted"]["codes"] == {"202": accepted}
    assert by_class["rejected"]["codes"] == {"422": rejected}
    assert sum(by_class["hostile"]["codes"].values()) == hostile
    assert all(400 <= int(code) < 500 for code in by_class["hostile"]["codes"])
    assert len(result["hostile_cases"]) == 5  # every kind of hostile request was sent
    assert result["settled"] == {"confirmed": accepted, "persisted": accepted}
    books = result["books"]
    assert books["payouts"] == accepted and books["paid_sats"] == accepted * PAYOUT
    # a pool (the default shape) also paid its prizes' creation fees (owner transactions)
    assert books["budget_sats"] - books["paid_sats"] - books["fees_sats"] - books["owner_fees_sats"] \
        == books["remaining_sats"]
    assert books["remaining_sats"] == books["api_remaining_sats"] == books["chain_sats"]


def test_sixty_mixed_submissions_from_eight_clients_keep_the_books(server: dict) -> None:
    result = run_load(server["url"], server["bounty"]["id"], total=60, concurrency=8,  # bounded: stops at 120 s
                      mix={"accepted": 20, "rejected": 25, "hostile": 15}, timeout=120, home=server["home"])
    _check(result, 20, 25, 15)  # all of it settled within that bound


@pytest.mark.slow
@pytest.mark.parametrize("server", [10_000_000], indirect=True)
def test_a_thousand_mixed_submissions(server: dict) -> None:
    result = run_load(server["url"], server["bounty"]["id"], total=1000, concurrency=16,
                      mix={"accepted": 300, "rejected": 400, "hostile": 300}, timeout=900, home=server["home"])
    _check(result, 300, 400, 300)
