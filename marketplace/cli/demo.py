"""`bounty demo`: the whole loop on the embedded default, in a fresh BOUNTY_HOME, through the HTTP API.

Create and fund a bounty; submit MNIST test images (some of the target digit, some not); wait for the
watcher to confirm and the workers to keep the accepted ones; retrain and redeploy through the workers;
submit again to the new contract; report the books.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from bsv import Network, PrivateKey
from sqlalchemy import func, select

from marketplace.api import create_app
from marketplace.bounties import create_bounty
from marketplace.cli.embedded import embedded_services
from marketplace.errors import ServiceError
from marketplace.runtime import open_runtime
from marketplace.schema import BountyMode, BountyShape, Deployment, RetrainRun, RetrainStatus, TrainingImage
from marketplace.settings import Settings
from model.data import load_mnist
from model.reference import classify

Say = Callable[[str], None]


def run_demo(home: Path, say: Say, digit: int = 7, payout: int = 500, budget: int = 200_000, per_round: int = 8,
             port: int = 0, timeout: float = 300.0, shape: BountyShape = BountyShape.POOL) -> dict[str, Any]:
    started = time.monotonic()
    settings = Settings(_env_file=None, home=home, block_interval=1.0, min_confirmations=1, retrain_fast=True,  # type: ignore[call-arg]
                        retrain_tolerance=0.005, retrain_class_tolerance=0.02, rate_limit_per_minute=10_000,
                        novelty_index_mnist_test=False)  # MNIST's test images play new handwriting here
    rt = open_runtime(settings)
    say(f"fresh BOUNTY_HOME {home}; embedded dev chain, SQLite, in-process workers")
    say("a vetted bounty: building the MNIST novelty index once (about 30 s the first time)")
    bounty = create_bounty(rt, [digit], payout, budget, mode=BountyMode.VETTED, shape=shape, prizes=per_round)
    say(f"bounty {bounty.id} (vetted, {shape}): {payout} sats per {digit}, {budget} sats in {bounty.contract_txid}")
    app = create_app(rt, background=True, start_background=embedded_services)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="demo-api", daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    say(f"API on {url}")
    data = load_mnist()
    images = data.x_test.reshape(-1, 784)
    labels, _ = classify(rt.artifact().integer, images)
    targets, others = np.flatnonzero(labels == digit), np.flatnonzero(labels != digit)
    address = PrivateKey(network=Network.TESTNET).address()
    tally = {"accepted": 0, "rejected": 0}
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            round_one = _submit(http, say, bounty.id, address, images, targets[:per_round], others[:per_round // 2],
                                tally)
            _wait(say, "confirmations and persistence", timeout,
                  lambda: _persisted(rt) >= len(round_one) and _all_confirmed(http, round_one))
            say("retraining on MNIST plus the accepted images, then redeploying through the workers")
            from workers.tasks import retrain_task

            retrain_task.delay("manual")
            _wait(say, "retraining and redeploy", timeout, lambda: _retrain_done(rt))
            round_two = _submit(http, say, bounty.id, address, images, targets[per_round:2 * per_round],
                                others[per_round // 2:per_round], tally)
            _wait(say, "confirmations on the new contract and persistence", timeout,
                  lambda: _all_confirmed(http, round_two) and _persisted(rt) >= len(round_one) + len(round_two))
            view = http.get(f"/bounties/{bounty.id}").json()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    with rt.session() as session:
        deployments = session.scalars(select(Deployment).where(Deployment.bounty_id == bounty.id)
                                      .order_by(Deployment.version)).all()
        persisted = session.scalar(select(func.count(TrainingImage.id))) or 0
        run = session.scalar(select(RetrainRun).order_by(RetrainRun.id.desc()))
        summary = {
            "shape": str(shape),
            "accepted": tally["accepted"],
            "rejected": tally["rejected"],
            "payout_sats": payout,
            "paid_sats": view["paid_sats"],
            "persisted": int(persisted),
            "model_versions": len({d.model_id for d in deployments}),
            "contract_txids": [d.deploy_txid for d in deployments],
            "retrain": str(run.status) if run else None,
            "remaining_sats": view["remaining_sats"],
            "fees_spent_sats": view["fees_spent_sats"],
            "elapsed_s": round(time.monotonic() - started, 1),
        }
    rt.close()
    return summary


def _submit(http: httpx.Client, say: Say, bounty_id: int, address: str, images: np.ndarray, targets: np.ndarray,
            others: np.ndarray, tally: dict[str, int]) -> list[int]:
    accepted = []
    for index in [*targets, *others]:
        response = http.post(f"/bounties/{bounty_id}/submissions",
                             json={"pixels": images[index].tolist(), "address": address})
        if response.status_code == 202:
            accepted.append(response.json()["id"])
            tally["accepted"] += 1
        elif response.status_code == 422:
            tally["rejected"] += 1
        else:
            raise ServiceError(f"the API answered {response.status_code}: {response.text}")
    say(f"submitted {len(targets) + len(others)} images: {len(accepted)} paid, the rest refused for free")
    return accepted


def _all_confirmed(http: httpx.Client, ids: list[int]) -> bool:
    return all(http.get(f"/submissions/{i}").json()["status"] == "confirmed" for i in ids)


def _persisted(rt: Any) -> int:
    with rt.session() as session:
        return int(session.scalar(select(func.count(TrainingImage.id))) or 0)


def _retrain_done(rt: Any) -> bool:
    with rt.session() as session:
        run = session.scalar(select(RetrainRun).order_by(RetrainRun.id.desc()))
        if run is not None and run.status in (RetrainStatus.FAILED, RetrainStatus.REJECTED):
            raise ServiceError(f"the retraining run ended {run.status}: {run.error}")
        return run is not None and run.status == RetrainStatus.SUCCEEDED


def _wait(say: Say, what: str, timeout: float, done: Callable[[], bool]) -> None:
    say(f"waiting for {what}...")
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise ServiceError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)
