"""End to end on this machine's real PostgreSQL and Redis, with real processes: `bounty serve` (API),
`bounty daemon` (watcher), a Celery worker and Celery beat. Fund, submit, confirm, persist, kill the
worker mid-stream, retrain (fast settings), redeploy, submit to the new contract."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from bsv import Network, PrivateKey
from sqlalchemy import func, select

from marketplace import migrate
from marketplace.chain import LocalChain
from marketplace.db import make_engine, session_scope
from marketplace.schema import (
    Deployment,
    ModelVersion,
    RetrainRun,
    RetrainStatus,
    Submission,
    SubmissionStatus,
    TrainingImage,
)
from model.artifact import ModelArtifact, load_artifact
from model.data import Mnist
from model.reference import classify
from tests.conftest import reset_schema

REDIS_DB = 11  # a database of this machine's Redis that nothing else here uses
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.fixture
def stack(tmp_path: Path, postgres: str) -> Iterator[dict]:
    url = reset_schema(postgres)
    migrate.upgrade(url)
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    env = {**os.environ, "BOUNTY_HOME": str(tmp_path / "home"), "BOUNTY_DATABASE_URL": url, "BOUNTY_REDIS_URL": broker,
           "BOUNTY_RETRAIN_FAST": "true", "BOUNTY_RETRAIN_TOLERANCE": "1", "BOUNTY_RETRAIN_CLASS_TOLERANCE": "1",
           "BOUNTY_TASK_VISIBILITY_TIMEOUT": "10", "BOUNTY_RATE_LIMIT_PER_MINUTE": "100000",
           "BOUNTY_RETRAIN_AFTER_IMAGES": "100000", "BOUNTY_LOG_LEVEL": "WARNING"}
    logs = tmp_path / "logs"
    logs.mkdir()
    processes: dict[str, subprocess.Popen] = {}
    files = []

    def start(name: str, *args: str) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - closed at teardown
        files.append(out)
        processes[name] = subprocess.Popen(list(args), env=env, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)
        return processes[name]

    port = free_port()
    created = subprocess.run([str(BIN / "bounty"), "create", "--digit", "7", "--payout", "500", "--budget",
                              "300000", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    start("api", str(BIN / "bounty"), "serve", "--port", str(port))
    start("daemon", str(BIN / "bounty"), "daemon", "--interval", "0.2")
    worker_args = (str(BIN / "celery"), "-A", "workers.app", "worker", "--concurrency", "1", "--loglevel", "WARNING")
    start("worker", *worker_args)
    start("beat", str(BIN / "celery"), "-A", "workers.app", "beat", "--loglevel", "WARNING", "--schedule",
          str(tmp_path / "beat-schedule"))
    api = f"http://127.0.0.1:{port}"
    wait_for("the API", lambda: _up(api), 60)
    engine = make_engine(url)
    chain = LocalChain(tmp_path / "home" / "chain.sqlite")
    try:
        yield {"api": api, "engine": engine, "chain": chain, "start": start, "processes": processes,
               "worker_args": worker_args, "logs": logs}
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        chain.close()
        engine.dispose()
        for out in files:
            out.close()
        redis.Redis.from_url(broker).flushdb()


def _up(api: str) -> bool:
    try:
        return httpx.get(f"{api}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def count(engine: object, what: object, *where: object) -> int:
    with session_scope(engine) as session:  # type: ignore[arg-type]
        return int(session.scalar(select(func.count(what)).where(*where)) or 0)  # type: ignore[arg-type]


def test_fund_submit_persist_retrain_redeploy_submit(stack: dict, shipped: ModelArtifact, mnist: Mnist) -> None:
    x = mnist.x_test.reshape(-1, 784)
    labels, _ = classify(shipped.integer, x)
    sevens = x[labels == 7]
    address = PrivateKey(network=Network.TESTNET).address()
    engine, chain = stack["engine"], stack["chain"]

    def submit(image: np.ndarray) -> int:
        response = httpx.post(f"{stack['api']}/bounties/1/submissions", timeout=60,
                              json={"pixels": image.tolist(), "address": address})
        assert response.status_code == 202, response.text
        return int(response.json()["id"])

    first = [submit(image) for image in sevens[:12]]
    chain.mine(1)
    wait_for("confirmations", lambda: count(engine, Submission.id, Submission.status == SubmissionStatus.CONFIRMED)
             == len(first))
    # kill the whole worker while it works through the persist tasks, then start a new one
    os.killpg(stack["processes"]["worker"].pid, signal.SIGKILL)
    stack["processes"]["worker"].wait(timeout=10)
    stack["start"]("worker", *stack["worker_args"])
    wait_for("every accepted image persisted", lambda: count(engine, TrainingImage.id) == len(first), 120)
    with session_scope(engine) as session:
        keys = session.scalars(select(TrainingImage.spend_key)).all()
        assert len(keys) == len(set(keys)) == len(first)  # nothing lost, nothing stored twice

    from marketplace.settings import Settings
    from workers.app import make_celery

    celery = make_celery(Settings(_env_file=None, redis_url=f"redis://127.0.0.1:6379/{REDIS_DB}"))
    celery.send_task("bounty.retrain", args=("manual",))
    wait_for("a retraining run", lambda: count(engine, RetrainRun.id, RetrainRun.status.in_(
        [RetrainStatus.SUCCEEDED, RetrainStatus.FAILED, RetrainStatus.REJECTED])) == 1, 240)
    with session_scope(engine) as session:
        run = session.scalar(select(RetrainRun))
        assert run is not None and run.status == RetrainStatus.SUCCEEDED, run.error if run else None
        versions = session.scalars(select(Deployment.version).order_by(Deployment.version)).all()
        assert versions == [1, 2]
        new_model = session.scalar(select(ModelVersion).where(ModelVersion.version == 2))
        assert new_model is not None
    new_labels, _ = classify(load_artifact(new_model.artifact_path).integer, sevens[20:40])
    after = submit(sevens[20:40][new_labels == 7][0])  # an image the new contract reads as a 7
    chain.mine(1)
    wait_for("the submission to the new contract", lambda: count(
        engine, Submission.id, Submission.id == after, Submission.status == SubmissionStatus.CONFIRMED) == 1)
    view = httpx.get(f"{stack['api']}/bounties/1").json()
    assert view["model_version"] == 2 and view["contract_version"] == 2
    assert view["accepted_count"] == len(first) + 1 and view["paid_sats"] == 500 * (len(first) + 1)
