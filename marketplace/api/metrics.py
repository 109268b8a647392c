"""`/metrics` in Prometheus' text format (prometheus-client).

Two kinds of figures:

- this process's requests, counted as they are answered (`bounty_http_requests_total` by method, route
  template and status; `bounty_http_request_duration_seconds`, a histogram by method and route): per process, as
  Prometheus expects of several API processes (it scrapes each);
- the books, read from the database at scrape time (`BooksCollector`), so every API process reports the same
  truth: submissions by status and reason, payouts (count and sats) and their fees per bounty; and the workers'
  queue depth and the chain's height. The books' figures are gauges, not counters: a reorg takes a payout back.
  A source that cannot be read leaves its figures out of that scrape and says so in `bounty_source_up`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace.runtime import Runtime
from marketplace.schema import Bounty, Payout, Submission
from marketplace.task_queue import queue_depth

log = logging.getLogger(__name__)
UNMATCHED = "<unmatched>"  # any path no route takes: one label, however many paths clients invent


def instrument(app: FastAPI, rt: Runtime) -> None:
    """Count `app`'s requests and serve `/metrics` (left out of the OpenAPI document, like `/`)."""
    registry = CollectorRegistry()
    registry.register(BooksCollector(rt))
    app.add_middleware(RequestMetrics, registry=registry)
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    def metrics(_request: Request) -> Response:  # sync: the books are read in the thread pool
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)


class RequestMetrics:
    """Counts and times each request by its route's template (`/bounties/{bounty_id}`), not its path."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter("bounty_http_requests", "HTTP requests answered by this process",
                                ["method", "route", "status"], registry=registry)
        self.seconds = Histogram("bounty_http_request_duration_seconds", "Time to answer a request",
                                 ["method", "route"], registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.requests.labels(scope["method"], route, str(status)).inc()
            self.seconds.labels(scope["method"], route).observe(time.perf_counter() - started)


class BooksCollector(Collector):
    """The database's, the queue's and the chain's figures, read at each scrape."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("bounty_source_up", "Whether this scrape could read a source of figures",
                               labels=["source"])
        for source, read in (("database", self._books), ("queue", self._queue), ("chain", self._chain)):
            try:
                families = list(read())
            except Exception as exc:  # one source down must not take the others' figures with it
                log.warning("metrics: cannot read the %s: %s", source, type(exc).__name__)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up

    def _books(self) -> Iterator[Metric]:
        submissions = GaugeMetricFamily("bounty_submissions", "Submissions in the books by bounty, status and "
                                        "reason (an image the model refuses before any row is written shows "
                                        "only as a 422 in bounty_http_requests_total)",
                                        labels=["bounty", "status", "reason"])
        payouts = GaugeMetricFamily("bounty_payouts", "Paid submissions in the books", labels=["bounty"])
        paid = GaugeMetricFamily("bounty_payout_sats", "Satoshis paid out", labels=["bounty"])
        fees = GaugeMetricFamily("bounty_fee_sats", "Satoshis of fees the paid submissions' spends took from "
                                 "the bounty", labels=["bounty"])
        with self.rt.session() as session:
            counted = session.execute(select(Submission.bounty_id, Submission.status, Submission.reason,
                                             func.count(Submission.id))
                                      .group_by(Submission.bounty_id, Submission.status, Submission.reason))
            for bounty_id, status, reason, count in counted:
                submissions.add_metric([str(bounty_id), str(status), str(reason or "")], count)
            totals = session.execute(select(Bounty.id, func.count(Payout.id),
                                            func.coalesce(func.sum(Payout.satoshis), 0),
                                            func.coalesce(func.sum(Payout.fee_sats), 0))
                                     .outerjoin(Payout, Payout.bounty_id == Bounty.id).group_by(Bounty.id))
            for bounty_id, count, satoshis, fee_sats in totals:
                payouts.add_metric([str(bounty_id)], count)
                paid.add_metric([str(bounty_id)], satoshis)
                fees.add_metric([str(bounty_id)], fee_sats)
        yield from (submissions, payouts, paid, fees)

    def _queue(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("bounty_task_queue_depth", "Tasks waiting for a worker (Redis, or the embedded "
                                "in-memory queue of this process)", value=queue_depth(self.rt.settings))

    def _chain(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("bounty_chain_height", "The chain's best block height",
                                value=self.rt.chain.tip_height())


__all__ = ["BooksCollector", "RequestMetrics", "instrument"]
