"""Hourly quotas (per payee address, per client) shared by every API process.

A quota is a counter per key and clock hour: `take` adds one and says whether the count is still within the
limit. In production the counters live in Redis (one INCR per take, expiring with the hour), so every API
process and worker sees the same counts; the embedded default keeps them in memory, which is exact there
because one process serves everything. A limit of 0 turns a quota off.

Who the client is comes from the connection's address; `X-Forwarded-For` is believed only when the
connection itself comes from a configured trusted proxy (anyone else could name any address).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from redis import Redis

WINDOW_SECONDS = 3600
Clock = Callable[[], float]


class Counters(Protocol):
    def incr(self, key: str, expire_seconds: int) -> int: ...


class MemoryCounters:
    """Counters for one process (the embedded default). Windows past their expiry are dropped as new ones open."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def incr(self, key: str, expire_seconds: int) -> int:
        now = self._clock()
        with self._lock:
            count, expires = self._counts.get(key, (0, now + expire_seconds))
            if expires <= now:
                count, expires = 0, now + expire_seconds
            self._counts[key] = (count + 1, expires)
            if len(self._counts) > 100_000:  # forget expired windows now and then
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            return count + 1


def redis_client(url: str) -> Redis:
    """A client for the service's Redis that gives up within seconds: a request never hangs on it."""
    return Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


class RedisCounters:
    """Counters in Redis: the window's key is created with its expiry, then incremented, in one transaction, so
    concurrent processes never lose a count and no key outlives its hour."""

    def __init__(self, url: str) -> None:
        self._redis = redis_client(url)

    def incr(self, key: str, expire_seconds: int) -> int:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=expire_seconds, nx=True)
            pipe.incr(key)
            _, count = pipe.execute()
        return int(count)


class Quota:
    """At most `limit` takes per key per clock hour (0: unlimited)."""

    def __init__(self, name: str, limit: int, counters: Counters, clock: Clock = time.time) -> None:
        self.name, self.limit, self._counters, self._clock = name, limit, counters, clock

    def take(self, key: str) -> bool:
        """Count one use by `key`; False when that goes over the limit for this hour."""
        if self.limit <= 0:
            return True
        window = int(self._clock() // WINDOW_SECONDS)
        count = self._counters.incr(f"bounty:quota:{self.name}:{window}:{key}", WINDOW_SECONDS + 60)
        return count <= self.limit


def counters_for(redis_url: str | None) -> Counters:
    """Redis when the service runs with Redis (production), else this process's memory (embedded)."""
    return RedisCounters(redis_url) if redis_url else MemoryCounters()


class ClientAddress:
    """The address a request comes from, believing `X-Forwarded-For` only from trusted proxies."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted = [ipaddress.ip_network(net, strict=False) for net in trusted_proxies]

    def _is_trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.trusted)

    def of(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client: walk `X-Forwarded-For` from the right while each hop is a trusted proxy; the first
        address that is not one is the client (entries further left could be forged by it)."""
        client = peer or "unknown"
        if not forwarded_for or not self._is_trusted(client):
            return client
        for hop in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
            client = hop
            if not self._is_trusted(hop):
                break
        return client
