"""Hourly quotas per payee and per client, in memory (embedded) and in Redis (shared by API processes), and
the client address behind trusted proxies only."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from marketplace.errors import ConfigError
from marketplace.quota import WINDOW_SECONDS, ClientAddress, MemoryCounters, Quota, RedisCounters
from marketplace.settings import Settings, get_settings

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self, now: float = 1_000_000 * WINDOW_SECONDS) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_its_limit_per_hour_and_a_new_hour_starts_afresh() -> None:
    clock = Clock()
    quota = Quota("payee", 3, MemoryCounters(clock), clock)
    assert [quota.take("addr-a") for _ in range(4)] == [True, True, True, False]
    assert quota.take("addr-b"), "another payee has its own count"
    clock.now += WINDOW_SECONDS
    assert quota.take("addr-a"), "the next hour starts a new count"


def test_a_limit_of_zero_turns_the_quota_off() -> None:
    quota = Quota("client", 0, MemoryCounters())
    assert all(quota.take("1.2.3.4") for _ in range(1000))


@pytest.mark.redis
def test_redis_counts_are_shared_by_processes_and_lose_nothing_under_concurrency() -> None:
    name = f"test-{uuid.uuid4().hex}"
    # two API processes: two clients of the same Redis
    first, second = Quota(name, 50, RedisCounters(REDIS_URL)), Quota(name, 50, RedisCounters(REDIS_URL))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: (first if i % 2 else second).take("payee"), range(80)))
    assert results.count(True) == 50 and results.count(False) == 30
    assert first.take("another payee")


@pytest.mark.redis
def test_redis_windows_expire_with_their_hour() -> None:
    from redis import Redis

    name = f"test-{uuid.uuid4().hex}"
    clock = Clock()
    Quota(name, 5, RedisCounters(REDIS_URL), clock).take("k")
    key = f"bounty:quota:{name}:{int(clock.now // WINDOW_SECONDS)}:k"
    ttl = Redis.from_url(REDIS_URL).ttl(key)
    assert WINDOW_SECONDS < ttl <= WINDOW_SECONDS + 60


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "client"), [
    ("203.0.113.9", "1.1.1.1", [], "203.0.113.9"),  # no trusted proxy: the header is ignored
    ("203.0.113.9", "1.1.1.1", ["10.0.0.0/8"], "203.0.113.9"),  # the peer is not a proxy: a client naming itself
    ("10.0.0.5", "198.51.100.7", ["10.0.0.0/8"], "198.51.100.7"),  # one trusted proxy
    ("10.0.0.5", "6.6.6.6, 198.51.100.7", ["10.0.0.0/8"], "198.51.100.7"),  # a forged entry on the left is ignored
    ("10.0.0.5", "198.51.100.7, 10.0.0.9", ["10.0.0.0/8"], "198.51.100.7"),  # two proxies in a row
    ("10.0.0.5", "", ["10.0.0.0/8"], "10.0.0.5"),
    ("::1", "2001:db8::1", ["::1"], "2001:db8::1"),
    (None, "1.1.1.1", ["10.0.0.0/8"], "unknown"),
])
def test_the_client_is_read_from_forwarded_for_only_behind_trusted_proxies(
        peer: str | None, forwarded: str, trusted: list[str], client: str) -> None:
    assert ClientAddress(trusted).of(peer, forwarded) == client


def test_a_bad_trusted_proxy_setting_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_TRUSTED_PROXIES", "10.0.0.0/8, not-an-ip")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match="BOUNTY_TRUSTED_PROXIES"):
            get_settings()
    finally:
        get_settings.cache_clear()
    good = Settings(_env_file=None, trusted_proxies="10.0.0.0/8, 192.168.1.1")  # type: ignore[call-arg]
    assert good.trusted_proxy_networks == ["10.0.0.0/8", "192.168.1.1"]
