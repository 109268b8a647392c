"""The API's per-client rate limit through the real app: who the client is (X-Forwarded-For believed only from a
trusted proxy), one bucket per client shared by API processes on one Redis, and a limit that holds while Redis
is down."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from marketplace.api import create_app
from marketplace.ratelimit import RedisRateLimiter
from marketplace.runtime import Runtime, open_runtime
from tests.support.settings import settings_for

REDIS_URL = "redis://127.0.0.1:6379/15"  # a database of this machine's Redis no other test uses
PER_MINUTE = 12  # a burst of 2, then one every 5 s
BLANK = {"pixels": [0] * 784}
PROXY = "10.1.2.3"


def fresh_client() -> str:
    """An address no earlier run left a bucket for (buckets in Redis outlive a test run by seconds)."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    """The runtimes a test's apps open (`api` adds them), closed afterwards."""
    opened: list[Runtime] = []
    yield opened
    for rt in opened:
        rt.close()


def api(runtimes: list[Runtime], tmp_path: Path, peer: str, redis_url: str | None = None) -> TestClient:
    """One API process's app, seen from a connection coming from `peer`."""
    rt = open_runtime(settings_for(tmp_path / f"home{len(runtimes)}", rate_limit_per_minute=PER_MINUTE,
                                   trusted_proxies="10.0.0.0/8", redis_url=redis_url))
    runtimes.append(rt)
    return TestClient(create_app(rt, background=False), client=(peer, 50_000))


def classify(app: TestClient, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return app.post("/classify", json=BLANK, headers=headers).status_code


STORES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.mark.parametrize("store", STORES)
def test_a_client_naming_itself_in_x_forwarded_for_is_still_limited_as_itself(
        runtimes: list[Runtime], tmp_path: Path, store: str) -> None:
    app = api(runtimes, tmp_path, fresh_client(), REDIS_URL if store == "redis" else None)
    codes = [classify(app, forwarded_for=fresh_client()) for _ in range(4)]  # a new name every time
    assert codes == [200, 200, 429, 429]


@pytest.mark.parametrize("store", STORES)
def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
        runtimes: list[Runtime], tmp_path: Path, store: str) -> None:
    app = api(runtimes, tmp_path, PROXY, REDIS_URL if store == "redis" else None)
    first, second = fresh_client(), fresh_client()
    assert [classify(app, first) for _ in range(3)] == [200, 200, 429]
    assert [classify(app, second) for _ in range(3)] == [200, 200, 429], "another client is not held back"
    # the proxy itself, forwarding for nobody, is one more client
    assert classify(app) == 200


@pytest.mark.redis
def test_two_api_processes_on_one_redis_share_a_clients_limit(runtimes: list[Runtime], tmp_path: Path) -> None:
    one, two = (api(runtimes, tmp_path, PROXY, REDIS_URL) for _ in range(2))
    client = fresh_client()
    assert [classify(one, client), classify(two, client)] == [200, 200]  # the burst, spent across both
    for app in (one, two):
        limited = app.post("/classify", json=BLANK, headers={"X-Forwarded-For": client})
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 5
        assert limited.json()["detail"].startswith("too many requests")


def test_while_redis_is_down_each_process_still_limits(runtimes: list[Runtime], tmp_path: Path) -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:9/0", PER_MINUTE)  # nothing listens on port 9
    waits = [limiter.allow("198.51.100.1") for _ in range(3)]
    assert waits[:2] == [0, 0] and 4 < waits[2] <= 5
    app = api(runtimes, tmp_path, fresh_client(), "redis://127.0.0.1:9/0")
    assert [classify(app) for _ in range(3)] == [200, 200, 429]
