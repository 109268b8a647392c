"""`bounty retrain [--wait] [--json]` as a real command: on the embedded default it runs the cycle in its own
process; with Redis it hands the cycle to a Celery worker that answers, or runs it itself when none does. Each
answer is checked against the `retrain_runs` table and the bounty's live contract."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, select

from marketplace import migrate
from marketplace.db import make_engine, session_scope
from marketplace.schema import Deployment, DeploymentStatus, RetrainRun, RetrainStatus
from tests.support.databases import reset_schema
from tests.support.processes import BIN, Process, create_bounty_cli, server_env, start_server, wait_for
from workers.retraining.lease import Lease

pytestmark = pytest.mark.subprocess  # the `bounty` command, and a Celery worker

KEYS = ["status", "run_id", "version", "base_version", "metrics", "images", "reasons", "redeployed", "error", "where"]
FIGURES = {"mnist_test_accuracy", "crowd_holdout_accuracy_before", "crowd_holdout_accuracy_after"}
FAST = {"BOUNTY_RETRAIN_FAST": "true", "BOUNTY_RETRAIN_VERIFY_IMAGES": "2"}  # a seconds-long cycle
ANY_CHALLENGER = {"BOUNTY_RETRAIN_TOLERANCE": "1", "BOUNTY_RETRAIN_CLASS_TOLERANCE": "1"}  # the gate passes it
REDIS_DB = 14  # a database of this machine's Redis no other test uses (0, 11, 12 and 13 are taken)
OUTCOMES = {RetrainStatus.SUCCEEDED: "deployed", RetrainStatus.REJECTED: "rejected", RetrainStatus.FAILED: "failed"}


def retrain(env: dict[str, str], cwd: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "bounty"), "retrain", *flags], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def report_of(done: subprocess.CompletedProcess[str], exit_code: int = 0) -> dict[str, Any]:
    assert done.returncode == exit_code, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert list(report) == KEYS
    assert set(report["metrics"]) >= FIGURES
    return dict(report)


def live_model_version(engine: Engine, bounty_id: int) -> tuple[int, str]:
    """The model version of the bounty's live contract, and the txid that deployed it."""
    with session_scope(engine) as session:
        deployment = session.scalars(select(Deployment).where(
            Deployment.bounty_id == bounty_id, Deployment.status == DeploymentStatus.ACTIVE)).one()
        return deployment.model.version, deployment.deploy_txid


def runs(engine: Engine) -> list[RetrainRun]:
    with session_scope(engine) as session:
        rows = session.scalars(select(RetrainRun).order_by(RetrainRun.id)).all()
        session.expunge_all()
        return list(rows)


def assert_matches_its_run(report: dict[str, Any], engine: Engine, bounty_id: int) -> None:
    """The report is the run as recorded, and a deployed run's model judges the bounty now."""
    [run] = [r for r in runs(engine) if r.id == report["run_id"]]
    assert report["status"] == OUTCOMES[run.status]
    metrics = run.metrics or {}
    recorded = metrics.get("mnist_test_accuracy", (metrics.get("test") or {}).get("challenger", {}).get("accuracy"))
    assert report["metrics"]["mnist_test_accuracy"] == recorded is not None
    assert report["images"] is not None and report["images"]["trained"] == 0  # nothing was bought yet
    version, txid = live_model_version(engine, bounty_id)
    if report["status"] == "deployed":
        assert report["version"] == version == report["base_version"] + 1
        assert report["redeployed"] == [{"bounty_id": bounty_id, "txid": txid, "txid_url": f"/chain/tx/{txid}"}]
        assert report["reasons"] == [] and report["error"] is None
    else:
        assert report["version"] is None and version == report["base_version"]


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[dict[str, str], Engine]]:
    """A fresh embedded BOUNTY_HOME with one active open bounty (id 1) on the shipped model."""
    env = server_env(tmp_path / "home", **FAST)
    create_bounty_cli(env, [7], 500, 100_000, cwd=tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'home' / 'bounty.sqlite'}")
    yield env, engine
    engine.dispose()


def test_retrain_wait_json_deploys_in_its_own_process_on_the_embedded_default(
        embedded: tuple[dict[str, str], Engine], tmp_path: Path) -> None:
    """Beside a running `bounty serve`, whose workers no other process can reach: the command runs the cycle
    itself, and the service then serves the bounty under the new model."""
    env, engine = embedded
    server, url = start_server(env, tmp_path / "serve.log", cwd=tmp_path)
    try:
        report = report_of(retrain({**env, **ANY_CHALLENGER}, tmp_path, "--wait", "--json"))
        assert report["where"] == "process" and report["status"] == "deployed", report
        assert_matches_its_run(report, engine, 1)
        assert [run.status for run in runs(engine)] == [RetrainStatus.SUCCEEDED]
        bounty = httpx.get(f"{url}/bounties/1", timeout=10).json()
        assert bounty["model_version"] == report["version"], bounty
        assert bounty["contract_txid"] == report["redeployed"][0]["txid"], bounty
    finally:
        server.stop()


def test_a_challenger_the_gate_refuses_is_reported_rejected_with_its_reasons(
        embedded: tuple[dict[str, str], Engine], tmp_path: Path) -> None:
    env, engine = embedded
    strict = {"BOUNTY_RETRAIN_TOLERANCE": "0", "BOUNTY_RETRAIN_CLASS_TOLERANCE": "0"}  # no digit may get worse
    report = report_of(retrain({**env, **strict}, tmp_path, "--wait", "--json"))
    assert report["status"] == "rejected", report
    assert_matches_its_run(report, engine, 1)
    [run] = runs(engine)
    failed = [f"{c['name']}: {c['detail']}" for c in (run.metrics or {})["checks"] if not c["passed"]]
    assert report["reasons"] == failed and failed, "the reasons are the gate's failed checks"


def test_a_run_while_another_holds_the_lease_is_skipped(embedded: tuple[dict[str, str], Engine],
                                                         tmp_path: Path) -> None:
    env, engine = embedded
    lease = Lease(engine)
    assert lease.acquire()
    try:
        report = report_of(retrain(env, tmp_path, "--wait", "--json"))
        people = retrain(env, tmp_path, "--wait")
    finally:
        lease.release()
    assert report["status"] == "skipped" and report["run_id"] is None and "lease" in report["reasons"][0], report
    assert runs(engine) == [], "a skipped call records no run"
    assert people.returncode == 0 and people.stdout.startswith("retraining in this process: skipped"), people
    assert "lease" in people.stdout


def test_a_failed_run_exits_1_with_one_sentence(embedded: tuple[dict[str, str], Engine], tmp_path: Path) -> None:
    env, engine = embedded
    (tmp_path / "model" / "weights.npz").write_bytes(b"not the champion's weights")  # its artifact is damaged
    done = retrain(env, tmp_path, "--wait", "--json")
    report = report_of(done, exit_code=1)
    [run] = runs(engine)
    assert report["status"] == "failed" and report["run_id"] == run.id and run.status == RetrainStatus.FAILED
    assert report["error"] == run.error and report["error"].startswith("ArtifactError"), report
    assert done.stderr.strip().splitlines()[-1] == f"error: retraining run {run.id} failed: {run.error}"
    assert live_model_version(engine, 1)[0] == report["base_version"], "nothing was deployed"


def test_without_wait_the_cycle_runs_in_a_detached_process(embedded: tuple[dict[str, str], Engine],
                                                           tmp_path: Path) -> None:
    env, engine = embedded
    started = time.monotonic()
    done = retrain({**env, **ANY_CHALLENGER}, tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15, "without --wait the command returns before the cycle ends"
    answer = json.loads(done.stdout)
    assert answer["status"] == "started" and answer["where"] == "process"
    log = Path(answer["log"])
    wait_for("the background run's report", lambda: log.read_text().rstrip().endswith("}"), timeout=120, step=1)
    text = log.read_text()
    report = json.loads(text[text.index("{\n"):])
    assert report["status"] == "deployed", report
    assert_matches_its_run(report, engine, 1)


# -- PostgreSQL and Redis ------------------------------------------------------------------------------------

@pytest.fixture
def on_redis(tmp_path: Path, postgres: str) -> Iterator[tuple[dict[str, str], Engine]]:
    """The production layout without the API: PostgreSQL, Redis (a database of our own) and one active open bounty."""
    url = reset_schema(postgres)
    migrate.upgrade(url)
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    env = server_env(tmp_path / "home", BOUNTY_DATABASE_URL=url, BOUNTY_REDIS_URL=broker, **FAST, **ANY_CHALLENGER)
    create_bounty_cli(env, [7], 500, 100_000, cwd=tmp_path)
    engine = make_engine(url)
    yield env, engine
    engine.dispose()
    redis.Redis.from_url(broker).flushdb()


@pytest.fixture
def worker(on_redis: tuple[dict[str, str], Engine], tmp_path: Path) -> Iterator[Process]:
    """A Celery worker on that Redis database, answering pings."""
    from marketplace.settings import Settings
    from workers.app import make_celery

    env, _ = on_redis
    process = Process([str(BIN / "celery"), "-A", "workers.app", "worker", "--concurrency", "1", "--loglevel",
                       "WARNING", "--hostname", f"retrain-cli-{os.getpid()}@localhost"], env, tmp_path / "worker.log",
                      cwd=tmp_path)
    try:
        celery = make_celery(Settings(_env_file=None, redis_url=env["BOUNTY_REDIS_URL"]))  # type: ignore[call-arg]
        wait_for("the worker", lambda: bool(celery.control.ping(timeout=1)), timeout=60, step=0.5)
        yield process
    finally:
        process.stop()


@pytest.mark.postgres
@pytest.mark.redis
def test_with_a_worker_on_redis_the_worker_runs_the_cycle(on_redis: tuple[dict[str, str], Engine], worker: Process,
                                                          tmp_path: Path) -> None:
    env, engine = on_redis
    report = report_of(retrain(env, tmp_path, "--wait", "--json"))
    assert report["where"] == "workers" and report["status"] == "deployed", (report, worker.log_tail())
    assert_matches_its_run(report, engine, 1)
    assert [run.trigger for run in runs(engine)] == ["manual"]


@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_that_finds_the_lease_held_is_reported_skipped(on_redis: tuple[dict[str, str], Engine],
                                                                worker: Process, tmp_path: Path) -> None:
    env, engine = on_redis
    lease = Lease(engine)  # another run holds it: the worker's task skips and records nothing
    assert lease.acquire()
    try:
        report = report_of(retrain(env, tmp_path, "--wait", "--json"))
    finally:
        lease.release()
    assert report["where"] == "workers" and report["status"] == "skipped", (report, worker.log_tail())
    assert "lease" in report["reasons"][0] and runs(engine) == []


@pytest.mark.postgres
@pytest.mark.redis
def test_with_redis_but_no_worker_the_command_runs_the_cycle_itself(on_redis: tuple[dict[str, str], Engine],
                                                                    tmp_path: Path) -> None:
    env, engine = on_redis
    done = retrain(env, tmp_path, "--wait", "--json")
    report = report_of(done)
    assert "no worker answers" in done.stderr
    assert report["where"] == "process" and report["status"] == "deployed", report
    assert_matches_its_run(report, engine, 1)
