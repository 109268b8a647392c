"""`/metrics` after real submissions through the API: the figures are the books', and the text is Prometheus'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from sqlalchemy import func, select

from marketplace.bounties import active_deployment, create_bounty
from marketplace.runtime import Runtime
from marketplace.schema import Bounty, Payout, Submission
from marketplace.task_queue import TASK_QUEUE, queue_depth
from tests.integration.test_service import PAYOUT, client, digits, post, rt, settle  # noqa: F401 (fixtures)
from tests.support.settings import settings_for

SUBMIT_ROUTE = "/bounties/{bounty_id}/submissions"
REDIS_QUEUE_DB = "redis://127.0.0.1:6379/14"  # a database of its own: the test fills and empties it


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, keyed by name and labels (parsed by prometheus_client's own parser)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_report_the_books_after_real_submissions(rt: Runtime, digits: dict[str, np.ndarray]) -> None:  # noqa: F811
    bounty = create_bounty(rt, [7], PAYOUT, 100_000)
    api = client(rt)
    codes = [post(api, bounty.id, image)["code"] for image in digits["sevens"][:3]]
    codes.append(post(api, bounty.id, digits["others"][0])["code"])
    assert codes == [202, 202, 202, 422]
    settle(rt)
    api.get(f"/bounties/{bounty.id}")

    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = scrape(response.text)
    one = frozenset({("bounty", str(bounty.id))})
    with rt.session() as session:
        row = session.get(Bounty, bounty.id)
        assert row is not None
        paid, fees, count = session.execute(select(func.sum(Payout.satoshis), func.sum(Payout.fee_sats),
                                                   func.count(Payout.id))
                                            .where(Payout.bounty_id == bounty.id)).one()
        deployment = active_deployment(session, row)
        assert deployment is not None
        balance = deployment.current_satoshis
        rows = session.scalar(select(func.count(Submission.id)).where(Submission.bounty_id == bounty.id))
    assert samples[("bounty_payouts", one)] == count == 3
    assert samples[("bounty_payout_sats", one)] == paid == 3 * PAYOUT
    assert samples[("bounty_fee_sats", one)] == fees > 0
    assert row.budget_sats - samples[("bounty_payout_sats", one)] - samples[("bounty_fee_sats", one)] == balance
    confirmed = frozenset({("bounty", str(bounty.id)), ("status", "confirmed"), ("reason", "")})
    assert samples[("bounty_submissions", confirmed)] == rows == 3  # the refused image wrote no row

    def requests(status: str) -> float:
        labels = frozenset({("method", "POST"), ("route", SUBMIT_ROUTE), ("status", status)})
        return samples.get(("bounty_http_requests_total", labels), 0)

    assert (requests("202"), requests("422")) == (3, 1)
    timed = frozenset({("method", "POST"), ("route", SUBMIT_ROUTE)})
    assert samples[("bounty_http_request_duration_seconds_count", timed)] == 4
    assert samples[("bounty_http_request_duration_seconds_sum", timed)] > 0
    by_template = frozenset({("method", "GET"), ("route", "/bounties/{bounty_id}"), ("status", "200")})
    assert samples[("bounty_http_requests_total", by_template)] == 1

    assert samples[("bounty_chain_height", frozenset())] == rt.chain.tip_height() >= 1
    assert samples[("bounty_task_queue_depth", frozenset())] == 0  # embedded, and no worker was started
    assert all(samples[("bounty_source_up", frozenset({("source", s)}))] == 1 for s in ("database", "queue", "chain"))
    assert "/metrics" not in api.get("/openapi.json").json()["paths"]


def test_an_unknown_path_is_counted_under_one_label(rt: Runtime) -> None:  # noqa: F811
    api = client(rt)
    for path in ("/nothing/1", "/nothing/2", "/wp-admin"):
        assert api.get(path).status_code == 404
    samples = scrape(api.get("/metrics").text)
    unmatched = frozenset({("method", "GET"), ("route", "<unmatched>"), ("status", "404")})
    assert samples[("bounty_http_requests_total", unmatched)] == 3
    assert not any(dict(labels).get("route", "").startswith("/nothing") for _name, labels in samples)


@pytest.mark.redis
def test_the_queue_depth_is_the_redis_queue_length(tmp_path: Path) -> None:
    redis = Redis.from_url(REDIS_QUEUE_DB)
    redis.flushdb()
    try:
        settings = settings_for(tmp_path, redis_url=REDIS_QUEUE_DB)
        assert queue_depth(settings) == 0
        redis.rpush(TASK_QUEUE, "a", "b")
        redis.rpush(f"{TASK_QUEUE}\x06\x166", "c")  # kombu's list for a task sent with priority 6
        assert queue_depth(settings) == 3
    finally:
        redis.flushdb()
        redis.close()
