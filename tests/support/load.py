"""The load driver and the books check, shared by the tests (tests/e2e/test_load.py, the fault tests) and
`bench/load.py` (its command line and report): a bounded load test of a running `bounty serve`, over HTTP on
the loopback.

It sends `total` submissions from `concurrency` client threads (one httpx client each): a mix of
*accepted* images (MNIST test images the bounty's model reads as one of its digits, each image once),
*rejected* images (MNIST test images it reads as another digit) and *hostile* requests (broken JSON, 783
pixels, a pixel of 300, an invalid address, random bytes uploaded as an image). It stops by itself: every
request is sent once, and the whole run (sending and waiting) is bounded by `timeout` seconds.

Then it waits for the watcher to confirm every accepted submission and the workers to keep its image,
and checks, through the API, the database and the chain:

- no 5xx; every accepted image 202; every rejected image 422 with the digit it was read as; every hostile
  request a 4xx;
- every accepted submission confirmed, paid exactly once (one payouts row) and persisted exactly once
  (one training_images row, its spend_key = "txid:input");
- the books: budget - payouts - fees == the live contract's balance, to the satoshi, in the database,
  in the API's `remaining_sats` and on chain (the single unspent output of the contract's script), as
  `books_balance` in tests/integration/test_service.py checks it.

`run_load(...)` returns counts by class, latency p50/p95/p99 per class, throughput and the verdict.
Accepted spends of one bounty take turns on its chain of outputs, so accepted throughput is a few per
second; the default mix is 30% accepted, 40% rejected, 30% hostile.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from bsv import Network, PrivateKey

from model.artifact import load_artifact

DEFAULT_MIX = {"accepted": 0.3, "rejected": 0.4, "hostile": 0.3}
HOSTILE_KINDS = ("malformed JSON", "783 pixels", "pixel 300", "bad address", "random bytes image")
TESTNET_ADDRESS = PrivateKey(7001, network=Network.TESTNET).address()  # a valid payee on the dev chain


# -- the requests --------------------------------------------------------------------------------------

@dataclass
class Job:
    kind: str  # accepted | rejected | hostile
    label: str  # what exactly (the hostile case, or the MNIST index)
    request: dict[str, Any]


@dataclass
class Outcome:
    kind: str
    label: str
    code: int  # 0: no answer (transport error or timeout)
    seconds: float
    body: Any = None
    error: str | None = None


@dataclass
class _Images:
    accepted: np.ndarray
    rejected: np.ndarray
    rejected_labels: np.ndarray


def _images(digits: list[int], min_margin: int, model_path: Path | str | None = None) -> _Images:
    """MNIST test images the bounty's model (`model_path`, default the shipped one) reads as one of `digits`
    (widest margin first) and as another digit."""
    from model.data import load_mnist
    from model.reference import classify

    x = load_mnist().x_test.reshape(-1, 784)
    labels, margins = classify(load_artifact(model_path).integer, x)
    ok = np.isin(labels, digits) & (margins >= max(min_margin, 1))
    order = np.argsort(-margins[ok], kind="stable")
    others = ~np.isin(labels, digits)
    return _Images(x[ok][order], x[others], labels[others])


def plan(total: int, mix: dict[str, float], digits: list[int], min_margin: int = 0, address: str = TESTNET_ADDRESS,
         seed: int = 1, model_path: Path | str | None = None) -> list[Job]:
    """`total` requests in the proportions of `mix` (fractions, or counts when they add up to `total`),
    shuffled with a fixed seed."""
    weights = {k: float(mix.get(k, 0)) for k in ("accepted", "rejected", "hostile")}
    if round(sum(weights.values())) == total and total > 1:
        counts = {k: int(v) for k, v in weights.items()}
    else:
        scale = sum(weights.values()) or 1.0
        counts = {k: int(total * v / scale) for k, v in weights.items()}
        counts["rejected"] += total - sum(counts.values())
    images = _images(digits, min_margin, model_path)
    if counts["accepted"] > len(images.accepted) or counts["rejected"] > len(images.rejected):
        raise ValueError(f"not enough distinct MNIST test images for {counts}")
    rng = random.Random(seed)
    jobs = [Job("accepted", f"accepted #{i}", {"json": {"pixels": images.accepted[i].tolist(), "address": address}})
            for i in range(counts["accepted"])]
    jobs += [Job("rejected", f"rejected #{i} (a {int(images.rejected_labels[i])})",
                 {"json": {"pixels": images.rejected[i].tolist(), "address": address}})
             for i in range(counts["rejected"])]
    for i in range(counts["hostile"]):
        case = HOSTILE_KINDS[i % len(HOSTILE_KINDS)]
        pixels = images.rejected[i % len(images.rejected)].tolist()
        if case == "malformed JSON":
            request: dict[str, Any] = {"content": b'{"pixels": [0, 0, 0',
                                       "headers": {"content-type": "application/json"}}
        elif case == "783 pixels":
            request = {"json": {"pixels": pixels[:783], "address": address}}
        elif case == "pixel 300":
            request = {"json": {"pixels": [300, *pixels[1:]], "address": address}}
        elif case == "bad address":  # an image the bounty would pay for: only the address is wrong
            request = {"json": {"pixels": images.accepted[i % len(images.accepted)].tolist(), "address": "1nvalid"}}
        else:
            noise = bytes(rng.getrandbits(8) for _ in range(2048))
            request = {"files": {"image": ("noise.png", noise, "image/png")}, "data": {"address": address}}
        jobs.append(Job("hostile", case, request))
    rng.shuffle(jobs)
    return jobs


# -- sending -------------------------------------------------------------------------------------------

def send(base_url: str, bounty_id: int, jobs: list[Job], concurrency: int, deadline: float,
         on_accepted: Callable[[int, float], None] | None = None) -> tuple[list[Outcome], float]:
    """Every job once, from `concurrency` threads with an httpx client each; jobs not started before the
    deadline are recorded with code 0. Returns the outcomes (in job order) and the wall time."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()
    url = f"{base_url}/bounties/{bounty_id}/submissions"

    def one(job: Job) -> Outcome:
        left = deadline - time.monotonic()
        if left <= 1:
            return Outcome(job.kind, job.label, 0, 0.0, error="not sent: out of time")
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=httpx.Timeout(min(120.0, left)))
            with lock:
                clients.append(client)
        started = time.monotonic()
        try:
            response = client.post(url, **job.request)
        except httpx.HTTPError as exc:
            return Outcome(job.kind, job.label, 0, time.monotonic() - started, error=f"{type(exc).__name__}: {exc}")
        took = time.monotonic() - started
        try:
            body = response.json()
        except ValueError:
            body = response.text[:200]
        if job.kind == "accepted" and response.status_code == 202 and on_accepted is not None:
            on_accepted(int(body["id"]), started)
        return Outcome(job.kind, job.label, response.status_code, took, body)

    began = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="load") as pool:
            outcomes = list(pool.map(one, jobs))
    finally:
        for client in clients:
            client.close()
    return outcomes, time.monotonic() - began


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    arr = np.asarray(values) * 1000
    found: dict[str, float | None] = {f"p{q}": round(float(np.percentile(arr, q)), 1) for q in (50, 95, 99)}
    return found | {"max": round(float(arr.max()), 1)}


# -- waiting and the books -------------------------------------------------------------------------------

def _runtime(home: Path | str, database_url: str | None) -> Any:
    from marketplace.runtime import Runtime
    from marketplace.settings import Settings

    return Runtime(Settings(_env_file=None, home=Path(home), database_url=database_url))  # type: ignore[call-arg]


def _deployed_model(rt: Any, bounty_id: int) -> str:
    from marketplace.bounties import live

    with rt.session() as session:
        _bounty, deployment = live(session, bounty_id)
        return str(deployment.model.artifact_path)


def wait_settled(rt: Any, ids: list[int], deadline: float) -> dict[str, int]:
    """Poll the database until every submission in `ids` is confirmed and kept for training (or time is up)."""
    from sqlalchemy import func, select

    from marketplace.schema import Submission, SubmissionStatus, TrainingImage

    confirmed = persisted = 0
    while time.monotonic() < deadline:
        with rt.session() as session:
            confirmed = persisted = 0
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                confirmed += int(session.scalar(select(func.count(Submission.id)).where(
                    Submission.id.in_(chunk), Submission.status == SubmissionStatus.CONFIRMED)) or 0)
                persisted += int(session.scalar(select(func.count(TrainingImage.id)).where(
                    TrainingImage.submission_id.in_(chunk))) or 0)
        if confirmed == persisted == len(ids):
            break
        time.sleep(0.5)
    return {"confirmed": confirmed, "persisted": persisted}


def check_books(rt: Any, base_url: str, bounty_id: int, ids: list[int], payouts_before: int) -> dict[str, Any]:
    """Every accepted submission paid once and kept once; budget - payouts - fees == the contract's balance
    in the database, in the API and on chain. Returns the figures and a list of failures."""
    from sqlalchemy import func, select

    from marketplace.bounties import active_deployment
    from marketplace.schema import Bounty, Deployment, Payout, Submission, TrainingImage
    from tests.support.pool_books import pool_books_failures, pool_on_chain

    failures: list[str] = []
    view = httpx.get(f"{base_url}/bounties/{bounty_id}", timeout=30).json()
    with rt.session() as session:
        bounty = session.get(Bounty, bounty_id)
        assert bounty is not None
        pool = bounty.shape == "pool"
        paid, fees, n_payouts = session.execute(
            select(func.coalesce(func.sum(Payout.satoshis), 0), func.coalesce(func.sum(Payout.fee_sats), 0),
                   func.count(Payout.id)).where(Payout.bounty_id == bounty_id)).one()
        deployment = active_deployment(session, bounty)
        assert deployment is not None
        rows = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for sub in session.scalars(select(Submission).where(Submission.id.in_(chunk))):
                rows[sub.id] = (sub.status, sub.txid, sub.input_index)
        payouts: Counter[int] = Counter()
        kept: dict[int, list[str]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            payouts.update(session.scalars(select(Payout.submission_id).where(Payout.submission_id.in_(chunk))))
            for sid, key in session.execute(select(TrainingImage.submission_id, TrainingImage.spend_key)
                                            .where(TrainingImage.submission_id.in_(chunk))):
                kept.setdefault(sid, []).append(key)
        all_keys = session.scalars(select(TrainingImage.spend_key).where(TrainingImage.bounty_id == bounty_id)).all()
        script_sha256 = deployment.locking_script_sha256
        spends = session.execute(select(Payout.txid, Payout.fee_sats).where(Payout.bounty_id == bounty_id)).all()
        owner = session.scalars(select(Deployment.deploy_txid).where(Deployment.bounty_id == bounty_id)).all()
        current = (deployment.current_txid, deployment.current_vout, deployment.current_satoshis)
        budget, payout_sats = bounty.budget_sats, bounty.payout_sats
    if pool:  # a pool's books: its reserve, live prizes and owner transactions (tests/support/pool_books.py)
        failures += pool_books_failures(rt, bounty_id)
        failures += _kept_once_failures(ids, rows, payouts, kept, all_keys, n_payouts, payouts_before)
        if int(paid) != payout_sats * int(n_payouts):
            failures.append(f"paid {paid} sats for {n_payouts} payouts of {payout_sats}")
        if view.get("paid_sats") != int(paid) or view.get("accepted_count") != int(n_payouts):
            failures.append(f"the API says paid {view.get('paid_sats')}, accepted {view.get('accepted_count')}; "
                            f"the database {paid}, {n_payouts}")
        totals, on_chain_sats = pool_on_chain(rt, bounty_id)
        if view.get("remaining_sats") != totals.balance:
            failures.append(f"the API says remaining {view.get('remaining_sats')}, the books {totals.balance}")
        return {"budget_sats": budget, "paid_sats": int(paid), "fees_sats": int(fees), "payouts": int(n_payouts),
                "owner_fees_sats": totals.owner_fees, "remaining_sats": totals.balance,
                "api_remaining_sats": view.get("remaining_sats"), "chain_sats": on_chain_sats,
                "balanced": not failures, "failures": failures}
    # the contract's script as the chain holds it (not recompiled: that needs the model file unchanged)
    live_tx = rt.chain.get_transaction(current[0])
    script = live_tx.outputs[current[1]].locking_script.serialize() if live_tx is not None else b""
    if hashlib.sha256(script).hexdigest() != script_sha256:
        failures.append(f"the live output {current[0]}:{current[1]} does not hold the deployed script")
    on_chain = rt.chain.utxos_for_script(script) if script else []
    failures += _kept_once_failures(ids, rows, payouts, kept, all_keys, n_payouts, payouts_before)
    if int(paid) != payout_sats * int(n_payouts):
        failures.append(f"paid {paid} sats for {n_payouts} payouts of {payout_sats}")
    expected = budget - int(paid) - int(fees)
    if expected != current[2]:
        failures.append(f"budget {budget} - paid {paid} - fees {fees} = {expected} != the deployment's {current[2]}")
    if view.get("remaining_sats") != expected or view.get("paid_sats") != int(paid) \
            or view.get("accepted_count") != int(n_payouts):
        failures.append(f"the API says remaining {view.get('remaining_sats')}, paid {view.get('paid_sats')}, "
                        f"accepted {view.get('accepted_count')}; the database {expected}, {paid}, {n_payouts}")
    failures += _fee_failures(rt, spends, owner)
    if [(u.txid, u.vout, u.satoshis) for u in on_chain] != [current]:
        failures.append(f"on chain the contract holds {[(u.txid, u.vout, u.satoshis) for u in on_chain]}, "
                        f"the books say {current}")
    return {"budget_sats": budget, "paid_sats": int(paid), "fees_sats": int(fees), "payouts": int(n_payouts),
            "owner_fees_sats": 0, "remaining_sats": current[2], "api_remaining_sats": view.get("remaining_sats"),
            "chain_sats": sum(u.satoshis for u in on_chain), "balanced": expected == current[2] == sum(
                u.satoshis for u in on_chain), "failures": failures}


def _kept_once_failures(ids: list[int], rows: dict[int, Any], payouts: Counter[int], kept: dict[int, list[str]],
                        all_keys: Any, n_payouts: int, payouts_before: int) -> list[str]:
    """Every accepted submission confirmed, paid once and kept once under its spend's key."""
    from marketplace.schema import SubmissionStatus

    failures = []
    not_confirmed = [i for i in ids if rows.get(i, (None,))[0] != SubmissionStatus.CONFIRMED]
    not_paid_once = [i for i in ids if payouts[i] != 1]
    not_kept_once = [i for i in ids if len(kept.get(i, [])) != 1]
    wrong_key = [i for i in ids if len(kept.get(i, [])) == 1 and kept[i][0] != f"{rows[i][1]}:{rows[i][2]}"]
    for name, bad in (("not confirmed", not_confirmed), ("not paid exactly once", not_paid_once),
                      ("not persisted exactly once", not_kept_once), ("spend_key is not txid:input", wrong_key)):
        if bad:
            failures.append(f"{len(bad)} accepted submissions {name} (e.g. {bad[:5]})")
    if len(all_keys) != len(set(all_keys)):
        failures.append("a spend_key is stored twice")
    if int(n_payouts) - payouts_before != len(ids):
        failures.append(f"{int(n_payouts) - payouts_before} new payouts rows for {len(ids)} accepted submissions")
    return failures


def _fee_failures(rt: Any, spends: list[Any], owner: list[str]) -> list[str]:
    """Each submission's fee (as booked and as paid) and each owner transaction's (the deploy, the migrations)
    against what its size allows at the rate in force."""
    from tests.support.fees import fee_paid, fee_problem

    failures = []
    for txid, booked in [*spends, *((txid, None) for txid in owner)]:
        tx = rt.chain.get_transaction(txid)
        if tx is None:
            failures.append(f"the chain does not know {txid}, which the books record")
            continue
        paid = fee_paid(rt.chain, tx)
        problem = fee_problem(paid, tx, rt.settings.fee_rate, last=booked is not None and len(tx.outputs) == 1)
        if booked is not None and booked != paid:
            problem = f"{txid} pays a {paid}-sat fee, the books say {booked}"
        if problem:
            failures.append(problem)
    return failures


# -- the whole run -------------------------------------------------------------------------------------

def run_load(base_url: str, bounty_id: int, total: int = 1000, concurrency: int = 8,
             mix: dict[str, float] | None = None, timeout: float = 900.0, *, home: Path | str | None = None,
             database_url: str | None = None, address: str = TESTNET_ADDRESS, seed: int = 1,
             model_path: Path | str | None = None) -> dict[str, Any]:
    """Send `total` submissions to bounty `bounty_id` of the server at `base_url`, wait for the accepted ones
    to be confirmed and persisted, and check the books (the database and chain checks need `home`, the
    server's BOUNTY_HOME, and `database_url` when it is not the SQLite file there). Bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    terms = httpx.get(f"{base_url}/bounties/{bounty_id}", timeout=30).json()
    digits = list(terms["digits"])
    rt = _runtime(home, database_url) if home is not None else None
    try:
        if rt is not None and model_path is None:
            model_path = _deployed_model(rt, bounty_id)
        if load_artifact(model_path).weights_sha256 != terms["weights_sha256"]:
            raise ValueError(f"bounty {bounty_id} runs model {terms['weights_sha256'][:12]}, not the one at "
                             f"{model_path or 'model/default'}: pass model_path")
        jobs = plan(total, mix or DEFAULT_MIX, digits, terms["min_margin"], address, seed, model_path)
        payouts_before = int(terms["accepted_count"])
        outcomes, wall = send(base_url, bounty_id, jobs, concurrency, deadline)
        accepted_ids = [int(o.body["id"]) for o in outcomes if o.kind == "accepted" and o.code == 202]
        waited = time.monotonic()
        settled = wait_settled(rt, accepted_ids, deadline) if rt is not None else {}
        waited = time.monotonic() - waited
        books = check_books(rt, base_url, bounty_id, accepted_ids, payouts_before) if rt is not None else None
    finally:
        if rt is not None:
            rt.close()
    return summarise(outcomes, wall, waited, settled, books, digits, concurrency)


def summarise(outcomes: list[Outcome], wall: float, waited: float, settled: dict[str, int],
              books: dict[str, Any] | None, digits: list[int], concurrency: int) -> dict[str, Any]:
    failures: list[str] = []
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in ("accepted", "rejected", "hostile"):
        mine = [o for o in outcomes if o.kind == kind]
        by_kind[kind] = {"sent": sum(1 for o in mine if not (o.error or "").startswith("not sent")),
                         "codes": dict(sorted(Counter(str(o.code) for o in mine).items())),
                         "latency_ms": percentiles([o.seconds for o in mine if o.code])}
    server_errors = [o for o in outcomes if o.code >= 500]
    unanswered = [o for o in outcomes if o.code == 0]
    if server_errors:
        failures.append(f"{len(server_errors)} 5xx answers (e.g. {server_errors[0].label}: {server_errors[0].body})")
    if unanswered:
        failures.append(f"{len(unanswered)} requests without an answer (e.g. {unanswered[0].error})")
    bad_accept = [o for o in outcomes if o.kind == "accepted" and o.code not in (0, 202)]
    if bad_accept:
        failures.append(f"{len(bad_accept)} accepted images answered otherwise (e.g. {bad_accept[0].code} "
                        f"{bad_accept[0].body})")
    bad_reject = [o for o in outcomes if o.kind == "rejected" and o.code and not (
        o.code == 422 and isinstance(o.body, dict) and isinstance(o.body.get("refusal"), dict)
        and o.body["refusal"].get("predicted") not in digits)]
    if bad_reject:
        failures.append(f"{len(bad_reject)} rejected images not refused with 422 (e.g. {bad_reject[0].code} "
                        f"{bad_reject[0].body})")
    bad_hostile = [o for o in outcomes if o.kind == "hostile" and o.code and not 400 <= o.code < 500]
    if bad_hostile:
        failures.append(f"{len(bad_hostile)} hostile requests not answered 4xx (e.g. {bad_hostile[0].label}: "
                        f"{bad_hostile[0].code})")
    rate_limited = sum(1 for o in outcomes if o.code == 429)
    if rate_limited:
        failures.append(f"{rate_limited} requests rate limited (raise BOUNTY_RATE_LIMIT_PER_MINUTE on the server)")
    accepted = sum(1 for o in outcomes if o.kind == "accepted" and o.code == 202)
    if settled and (settled["confirmed"] != accepted or settled["persisted"] != accepted):
        failures.append(f"after waiting: {settled['confirmed']} confirmed, {settled['persisted']} persisted "
                        f"of {accepted} accepted")
    if books is not None:
        failures += books["failures"]
    answered = [o for o in outcomes if o.code]
    return {
        "requests": len(outcomes), "answered": len(answered), "concurrency": concurrency,
        "by_class": by_kind, "latency_ms": percentiles([o.seconds for o in answered]),
        "send_wall_s": round(wall, 2), "throughput_rps": round(len(answered) / wall, 1) if wall else None,
        "accepted_per_s": round(accepted / wall, 2) if wall else None,
        "settle_wait_s": round(waited, 2), **({"settled": settled} if settled else {}),
        "books": books, "books_checked": books is not None,
        "hostile_cases": dict(Counter(o.label for o in outcomes if o.kind == "hostile")),
        "verdict": "pass" if not failures else "fail", "failures": failures,
    }
