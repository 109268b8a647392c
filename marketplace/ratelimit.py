"""A per-client rate limit: a token bucket per key, refilled continuously.

`rate_limiter_for` picks where the buckets live: in Redis when the service has it (production), so every API
process draws on one client's single bucket; in this process's memory otherwise (the embedded default, where
one process serves everything). Who the client is comes from `marketplace.quota.ClientAddress`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Protocol

from redis.exceptions import RedisError

from marketplace.quota import redis_client

log = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 5.0  # after a Redis failure, buckets stay in memory this long before Redis is tried again


class RateLimiter(Protocol):
    def allow(self, client: str) -> float:
        """0 when the request may go ahead, else the seconds to wait before retrying."""
        ...


def default_burst(per_minute: int) -> float:
    return float(max(1, per_minute // 6))


class MemoryRateLimiter:
    """Buckets in this process; the least recently seen clients are forgotten past `max_clients`."""

    def __init__(self, per_minute: int, burst: int | None = None, max_clients: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst) if burst is not None else default_burst(per_minute)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, client: str) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[client] = (tokens - 1 if not wait else tokens, now)
            while len(self._buckets) > self.max_clients:  # forget the least recently seen clients
                self._buckets.popitem(last=False)
        return wait


# The same bucket as MemoryRateLimiter's, read, refilled and drawn from in one atomic step on Redis's clock (the
# API processes' clocks need not agree). A bucket left alone until it is full again expires: a full bucket is
# what a missing key means.
TOKEN_BUCKET = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = math.min(burst, (tonumber(state[1]) or burst) + math.max(0, t - (tonumber(state[2]) or t)) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(t))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter:
    """Buckets in Redis, shared by every API process on it. While Redis fails, this process's own buckets stand
    in (a client is still limited, by each process separately) and Redis is tried again after a few seconds."""

    def __init__(self, url: str, per_minute: int, burst: int | None = None, prefix: str = "bounty:rate:") -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst) if burst is not None else default_burst(per_minute)
        self.prefix = prefix
        self._redis = redis_client(url)
        self._script = self._redis.register_script(TOKEN_BUCKET)
        self._fallback = MemoryRateLimiter(per_minute, burst)
        self._redis_again_at = 0.0

    def allow(self, client: str) -> float:
        if time.monotonic() < self._redis_again_at:
            return self._fallback.allow(client)
        try:
            wait = float(self._script(keys=[self.prefix + client], args=[repr(self.rate), repr(self.burst)]))
        except RedisError as exc:
            log.warning("rate limit: Redis failed (%s); limiting in this process for %.0f s",
                        type(exc).__name__, REDIS_RETRY_SECONDS)
            self._redis_again_at = time.monotonic() + REDIS_RETRY_SECONDS
            return self._fallback.allow(client)
        return wait


def rate_limiter_for(redis_url: str | None, per_minute: int) -> RateLimiter:
    """Redis when the service runs with Redis (production), else this process's memory (embedded)."""
    return RedisRateLimiter(redis_url, per_minute) if redis_url else MemoryRateLimiter(per_minute)
