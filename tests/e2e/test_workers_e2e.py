"""End to end on this machine's real PostgreSQL and Redis, with real processes: `bounty serve` (API),
`bounty daemon` (watcher), a Celery worker and Celery beat. Fund, submit, confirm, persist, kill the
worker mid-stream, retrain (fast settings), redeploy, submit to the new contract. And the attack suite
against a vetted bounty on the same stack (quotas counted in Redis)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
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
from tests.support.databases import reset_schema
from tests.support.processes import BIN, Process, create_bounty_cli, free_port, healthy, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.subprocess]

REDIS_DB = 11  # a database of this machine's Redis that nothing else here uses


@pytest.fixture
def stack(tmp_path: Path, postgres: str) -> Iterator[dict]:
    url = reset_schema(postgres)
    migrate.upgrade(url)
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    env = {**os.environ, "BOUNTY_HOME": str(tmp_path / "home"), "BOUNTY_DATABASE_URL": url, "BOUNTY_REDIS_URL": broker,
           "BOUNTY_RETRAIN_FAST": "true", "BOUNTY_RETRAIN_TOLERANCE": "1", "BOUNTY_RETRAIN_CLASS_TOLERANCE": "1",
           "BOUNTY_TASK_VISIBILITY_TIMEOUT": "10", "BOUNTY_RATE_LIMIT_PER_MINUTE": "100000",
           "BOUNTY_RETRAIN_AFTER_IMAGES": "100000", "BOUNTY_LOG_LEVEL": "WARNING",
           "BOUNTY_NOVELTY_INDEX_MNIST_TEST": "false"}  # vetted bounties: MNIST's test images play new handwriting
    logs = tmp_path / "logs"
    logs.mkdir()
    processes: dict[str, Process] = {}

    def start(name: str, *args: str) -> Process:
        processes[name] = Process(list(args), env, logs / f"{name}.log")
        return processes[name]

    port = free_port()
    create_bounty_cli(env, [7], 500, 300_000)
    start("api", str(BIN / "bounty"), "serve", "--port", str(port))
    start("daemon", str(BIN / "bounty"), "daemon", "--interval", "0.2")
    worker_args = (str(BIN / "celery"), "-A", "workers.app", "worker", "--concurrency", "1", "--loglevel", "WARNING")
    start("worker", *worker_args)
    start("beat", str(BIN / "celery"), "-A", "workers.app", "beat", "--loglevel", "WARNING", "--schedule",
          str(tmp_path / "beat-schedule"))
    api = f"http://127.0.0.1:{port}"
    wait_for("the API", lambda: healthy(api), 60)
    engine = make_engine(url)
    chain = LocalChain(tmp_path / "home" / "chain.sqlite")
    try:
        yield {"api": api, "engine": engine, "chain": chain, "start": start, "processes": processes,
               "worker_args": worker_args, "logs": logs, "env": env}
    finally:
        for process in processes.values():
            process.stop()
        chain.close()
        engine.dispose()
        redis.Redis.from_url(broker).flushdb()


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
    stack["processes"]["worker"].kill(signal.SIGKILL)
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


def test_attacks_on_a_vetted_bounty_on_the_stack_pay_nothing(stack: dict, shipped: ModelArtifact,
                                                           mnist: Mnist) -> None:
    """Forgeries, garbage, replays, MNIST itself and a payee swap, sent to a vetted pool bounty through the real
    API on PostgreSQL + Redis: only the two honest images are paid; they are persisted under their vetted label;
    the books balance to the satoshi in the database and on chain."""
    from bsv import P2PKH, Transaction

    from contracts.transactions import address_pkh
    from marketplace.chain.errors import TransactionRejected
    from marketplace.runtime import Runtime
    from marketplace.schema import Bounty, Payout
    from marketplace.settings import Settings
    from model.adversary import KINDS, craft
    from tests.support.pool_books import pool_books_failures

    bounty_id = int(create_bounty_cli(stack["env"], list(range(10)), 500, 300_000, vetted=True)["id"])
    engine, chain = stack["engine"], stack["chain"]
    x = mnist.x_test.reshape(-1, 784)
    labels, _ = classify(shipped.integer, x)
    honest = x[(labels == mnist.y_test) & (mnist.y_test == 3)][:2]

    def send(image: np.ndarray, payee: str) -> httpx.Response:
        return httpx.post(f"{stack['api']}/bounties/{bounty_id}/submissions", timeout=60,
                          json={"pixels": [int(v) for v in image], "address": payee})

    payees = [PrivateKey(20_000 + i, network=Network.TESTNET).address() for i in range(40)]
    paid = [send(image, payees[i]) for i, image in enumerate(honest)]
    assert [r.status_code for r in paid] == [202, 202], [r.text for r in paid]
    refused = []
    for k, kind in enumerate(KINDS):
        attacks = craft(kind, shipped, 3, seed=31 + k, images=mnist.x_test[:300], labels=mnist.y_test[:300])
        refused += [send(image, payees[10 + 3 * k + i]) for i, image in enumerate(attacks.images)]
    refused.append(send(honest[0], payees[35]))  # a replay by someone else
    refused.append(send(mnist.x_train.reshape(-1, 784)[0], payees[36]))  # MNIST itself
    assert all(r.status_code == 422 for r in refused), [r.text for r in refused if r.status_code != 422]
    # the payee swap: rebuild a paid spend to pay someone else; the attestor's signature no longer holds
    tx = chain.get_transaction(paid[0].json()["txid"])
    assert tx is not None
    stolen = Transaction.from_hex(tx.hex())
    stolen.outputs[-1].locking_script = P2PKH().lock(address_pkh(payees[39]))
    with pytest.raises(TransactionRejected):
        chain.broadcast(stolen)

    chain.mine(1)
    ids = [r.json()["id"] for r in paid]
    wait_for("the honest images confirmed and persisted", lambda: count(
        engine, TrainingImage.id, TrainingImage.submission_id.in_(ids), TrainingImage.label == 3) == 2, 120)
    with session_scope(engine) as session:
        bounty = session.get(Bounty, bounty_id)
        assert bounty is not None
        payouts = session.scalars(select(Payout).where(Payout.bounty_id == bounty_id)).all()
        assert len(payouts) == 2 and all(p.satoshis == 500 for p in payouts)
    # a pool (the default shape): reserve + live prizes + payouts + fees == budget, against the chain
    settings = Settings(_env_file=None, home=Path(stack["env"]["BOUNTY_HOME"]),  # type: ignore[call-arg]
                        database_url=stack["env"]["BOUNTY_DATABASE_URL"])
    assert pool_books_failures(Runtime(settings, engine=engine, chain=chain), bounty_id) == []

