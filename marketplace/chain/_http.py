"""HTTP for the network backend: a timeout on every request, capped retries with exponential backoff
on transient failures (timeouts, connection errors, HTTP 5xx and 429), and ``ChainUnavailable`` when
the retries run out. Any other answer, 4xx included, goes back to the caller to interpret."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from marketplace.chain.errors import ChainUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4         # tries in all, the first included
    backoff: float = 0.5      # seconds before the first retry, doubled for each next one
    max_backoff: float = 8.0  # cap on one wait, Retry-After included
    timeout: float = 10.0     # seconds for one request


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


class HttpService:
    """One remote service (ARC, WhatsOnChain) at a base URL, with fixed headers and a retry policy.

    `headers` may carry API keys: they are sent, never logged or shown in ``repr``.
    """

    def __init__(self, name: str, base_url: str, headers: dict[str, str], policy: RetryPolicy,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.name, self.policy = name, policy
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=policy.timeout,
                                    transport=transport)

    def __repr__(self) -> str:
        return f"HttpService({self.name!r}, {str(self._client.base_url)!r})"

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The first non-transient answer; ChainUnavailable when every attempt failed transiently."""
        problem = ""
        for attempt in range(1, self.policy.attempts + 1):
            retry_after = 0.0
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TimeoutException:
                problem = f"no answer within {self.policy.timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__})"
            else:
                if not _transient(response.status_code):
                    return response
                problem = f"HTTP {response.status_code}"
                retry_after = _retry_after(response)
            if attempt < self.policy.attempts:
                delay = self.policy.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)  # jitter spreads workers
                delay = min(max(delay, retry_after), self.policy.max_backoff)
                log.warning("%s %s %s: %s; retry %d of %d in %.2f s", self.name, method, path, problem, attempt,
                            self.policy.attempts - 1, delay)
                time.sleep(delay)
        raise ChainUnavailable(f"{self.name} did not answer {method} {path} after {self.policy.attempts} tries "
                               f"({problem}); retry later")

    def close(self) -> None:
        self._client.close()


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "0")))
    except ValueError:  # an HTTP date: fall back to our own backoff
        return 0.0
