"""Issue 13's whole-loop benchmark: a crowd outside MNIST buys a better model through the HTTP API.

    python bench/crowd.py [--seed 13] [--limit N] [--clients 4] [--json] [--keep-home] [--screen-only]
                          [--appeals-need-review]

The crowd (bench/crowd_data.py): the 1,797 digits of the UCI "Optical Recognition of Handwritten Digits" set
bundled in scikit-learn, each drawn as the web page's canvas uploads it (a 280x280 PNG, black on white). Split
seeded and stratified per digit: two thirds are submitted, one third is held aside, never submitted, only to
judge models.

1. **Screen** (the library, no service): with the shipped model and judge, per digit, how many submitted images
   the on-chain classifier reads right, how many it gets wrong with the true digit second within the appeal gap
   (appealable), what the judge and the novelty check say of those; the shipped integer model's accuracy on the
   held-aside third.
2. **The loop** (real processes, a fresh temporary BOUNTY_HOME on the embedded default: SQLite, the embedded
   dev chain, in-process workers): ten vetted bounties created with the CLI, one per digit; `bounty serve`;
   each submitted image sent as the page sends it (a multipart form: `image`, `address`, and `appeal=true` for
   a second try) to the bounty of its true digit, each from its own payout address, from `--clients` threads;
   a refusal marked `appealable` is appealed; appeals held for review (`--appeals-need-review`) are approved
   with `bounty review approve-appeal`. Then it waits until every paid image is confirmed and kept as a
   training image, triggers one retraining (`trigger_retrain`) and waits for it; a deployed model is followed
   until every bounty's live contract runs it (GET /bounties).
3. **Judge**: the shipped and the deployed integer model (model.reference, what the contracts compute) on the
   held-aside third and on MNIST's 10,000 test images; the held-aside third is also sent to POST /classify
   after the redeploy, so the figure is the deployed contracts' own reading.

Quotas are off (BOUNTY_QUOTA_PER_*=0): the whole crowd comes from 127.0.0.1, and a per-client quota would
refuse it for its volume, which says nothing about its handwriting. Everything else is the product's default
(retraining included: fine-tune, default gate). Prints one JSON object (`--json`) or a short summary; a full
run (no `--limit`) also writes bench/results/crowd.json (crowd-seedN.json for another `--seed`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.crowd_data import CREDIT, Crowd, load_crowd, split  # noqa: E402
from tests.support.processes import BIN, create_bounty_cli, server_env, start_server, wait_for  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_SEED = 13
PAYOUT = 500
MAX_FEE = 8_706  # the default maximum fee at 100 sat/kB (README): what one paid image can cost on top of the payout
APPEAL_GAP = 4_000  # BOUNTY_APPEAL_GAP's default, which `bounty create` writes into each contract
REFUSED_BY_CLASSIFIER = "classifier"  # a 422 from the contract's pre-check (no receipt kept)


# -- 1. the screen: what the shipped model and judge make of the crowd ---------------------------------------

def screen(crowd: Crowd, submitted: np.ndarray, held: np.ndarray, appeal_gap: int = APPEAL_GAP) -> dict[str, Any]:
    """Per digit, of the submitted images: read right by the on-chain classifier, appealable (wrong, the true
    digit second within the gap), then among those that reach vetting: the novelty check (MNIST's 70,000 and
    the crowd's earlier images, in submission order) and the judge; and the shipped model on the held aside."""
    from marketplace.novelty.mnist import load_or_build
    from model.artifact import load_artifact
    from model.judge import load_judge
    from model.reference import classify, logits

    model = load_artifact().integer
    x, y = crowd.pixels[submitted], crowd.labels[submitted]
    z = logits(model, x)
    label, margin = classify(model, x)
    second = np.argsort(-z, axis=1, kind="stable")[:, 1]
    right = label == y
    appealable = ~right & (second == y) & (margin <= appeal_gap)
    reaches = right | appealable
    judged = load_judge().assess(x, y)
    index = load_or_build(_novelty_cache(), include_test=True)
    copy_of: list[str | None] = []
    for i in range(len(x)):
        match = index.is_copy(x[i]) if reaches[i] else None
        copy_of.append(None if match is None else ("mnist" if match.key.startswith("mnist") else "crowd"))
        if reaches[i]:
            index.add(f"crowd:{submitted[i]}", x[i])
    copy = np.array([c is not None for c in copy_of])
    judge_reason = np.array([r or "" for r in judged.reason])
    payable = reaches & ~copy & (judge_reason == "")

    def row(mask: np.ndarray) -> dict[str, int]:
        return {"images": int(mask.sum()), "read_right": int((mask & right).sum()),
                "appealable": int((mask & appealable).sum()),
                "wrong_not_appealable": int((mask & ~right & ~appealable).sum()),
                "reach_vetting": int((mask & reaches).sum()),
                "copies_mnist": int(sum(m and c == "mnist" for m, c in zip(mask, copy_of, strict=True))),
                "copies_crowd": int(sum(m and c == "crowd" for m, c in zip(mask, copy_of, strict=True))),
                "out_of_distribution": int((mask & reaches & ~copy & (judge_reason == "out_of_distribution")).sum()),
                "judge_disagrees": int((mask & reaches & ~copy & (judge_reason == "judge_disagrees")).sum()),
                "payable": int((mask & payable).sum()),
                "payable_on_appeal": int((mask & payable & appealable).sum())}

    held_label, _ = classify(model, crowd.pixels[held])
    held_right = held_label == crowd.labels[held]
    return {"submitted": {"all": row(np.ones(len(x), dtype=bool)),
                          "per_digit": {d: row(y == d) for d in range(10)}},
            "judge_on_every_submitted_image": {
                "passes": int((judge_reason == "").sum()),
                "out_of_distribution": int((judge_reason == "out_of_distribution").sum()),
                "judge_disagrees": int((judge_reason == "judge_disagrees").sum())},
            "shipped_on_held_aside": {"images": len(held), "accuracy": _ratio(held_right.sum(), len(held)),
                                      "per_digit": {d: _ratio(held_right[crowd.labels[held] == d].sum(),
                                                              (crowd.labels[held] == d).sum()) for d in range(10)}}}


def _novelty_cache() -> Path:
    """Where the screen keeps its copy of the MNIST novelty index file (built once, about 30 s)."""
    path = Path(tempfile.gettempdir()) / "digit-bounty-bench-novelty"
    path.mkdir(exist_ok=True)
    return path


# -- 2. the loop through the HTTP API ------------------------------------------------------------------------

def address(i: int) -> str:
    """A distinct testnet payout address per image, as in bench/vetting.py."""
    from bsv import Network, PrivateKey

    return str(PrivateKey(20_000 + i, network=Network.TESTNET).address())


def send(http: httpx.Client, bounty: int, png: bytes, payee: str, appeal: bool = False) -> dict[str, Any]:
    """One upload as the web page sends it (multipart: image, address, appeal)."""
    data = {"address": payee, **({"appeal": "true"} if appeal else {})}
    r = http.post(f"/bounties/{bounty}/submissions", files={"image": ("digit.png", png, "image/png")}, data=data)
    body = r.json()
    if r.status_code == 202:
        return {"code": 202, "id": int(body["id"]), "status": body["status"], "reason": None, "appealable": False}
    refusal = body.get("refusal") or {}
    reason = refusal.get("reason") or (REFUSED_BY_CLASSIFIER if r.status_code == 422 and "predicted" in refusal
                                       else f"http_{r.status_code}")
    return {"code": r.status_code, "id": refusal.get("submission_id"), "status": None, "reason": reason,
            "appealable": bool(refusal.get("appealable")), "message": body.get("detail")}


def submit_crowd(url: str, crowd: Crowd, indices: np.ndarray, bounties: dict[int, int], clients: int
                 ) -> list[dict[str, Any]]:
    """Every image to its digit's bounty; an appealable refusal appealed once. One answer per image."""
    with httpx.Client(base_url=url, timeout=180) as http, ThreadPoolExecutor(clients) as pool:
        def one(i: int) -> dict[str, Any]:
            digit, png, payee = int(crowd.labels[i]), crowd.pngs[i], address(int(i))
            first = send(http, bounties[digit], png, payee)
            if first["code"] == 422 and first["appealable"]:
                second = send(http, bounties[digit], png, payee, appeal=True)
                return {"index": int(i), "digit": digit, **second, "appealed": True, "first_reason": first["reason"]}
            return {"index": int(i), "digit": digit, **first, "appealed": False}

        return list(pool.map(one, [int(i) for i in indices]))


def approve_held_appeals(env: dict[str, str], answers: list[dict[str, Any]]) -> list[int]:
    """Appeals that passed vetting but wait for a person (BOUNTY_APPEALS_NEED_REVIEW): approved with the CLI."""
    held = [a["id"] for a in answers if a["appealed"] and a["code"] == 202 and a["status"] == "vetting"]
    for start in range(0, len(held), 50):
        done = subprocess.run([str(BIN / "bounty"), "review", "approve-appeal",
                               *map(str, held[start:start + 50]), "--json"],
                              env=env, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bounty review approve-appeal failed: {done.stderr.strip()[-800:]}")
    return held


def wait_persisted(database_url: str, ids: list[int], timeout: float) -> dict[str, Any]:
    """Poll the database until each paid submission is a training image or has ended otherwise (rejected,
    orphaned); the counts of each."""
    from sqlalchemy import select

    from marketplace.db import make_engine, session_scope
    from marketplace.schema import Submission, TrainingImage

    engine = make_engine(database_url)
    state: dict[str, Any] = {}

    def settled() -> bool:
        with session_scope(engine) as session:
            kept = session.execute(select(TrainingImage.submission_id, TrainingImage.holdout,
                                          TrainingImage.duplicate_of).where(TrainingImage.submission_id.in_(ids))
                                   ).all()
            statuses = dict(session.execute(select(Submission.id, Submission.status)
                                            .where(Submission.id.in_(ids))).all())
        kept_ids = {row[0] for row in kept}
        ended = {i for i, s in statuses.items() if str(s) in ("rejected", "orphaned") and i not in kept_ids}
        state.update(persisted=len(kept_ids), holdout=sum(bool(r[1]) for r in kept),
                     duplicates=sum(r[2] is not None for r in kept), ended_unpaid=len(ended),
                     waiting=len(set(ids) - kept_ids - ended))
        return state["waiting"] == 0

    try:
        wait_for("paid images to be confirmed and kept", settled, timeout=timeout, step=1.0)
    except AssertionError:
        state["timed_out"] = True
    finally:
        engine.dispose()
    return state


def trigger_retrain(env: dict[str, str], log: Path, timeout: float = 3600) -> dict[str, Any]:
    """One retraining cycle now, waited for, as its own process on the service's settings; normalised to
    {status: deployed | rejected | skipped | failed, version, reasons, metrics, raw}.

    `bounty retrain --wait --json` when the CLI has it; until then the workers' own function
    (`workers.retraining.retrain(rt, RetrainTrigger.MANUAL)`) in a child interpreter: the same code a worker
    runs, beside the running service (the run lease keeps it from overlapping the service's own workers, and
    the service's watcher follows the migrations like any other spend)."""
    bounty = str(BIN / "bounty")
    has_cli = subprocess.run([bounty, "retrain", "--help"], env=env, capture_output=True, timeout=120,
                             check=False).returncode == 0
    command = [bounty, "retrain", "--wait", "--json"] if has_cli else [sys.executable, "-c", _LIBRARY_RETRAIN]
    with open(log, "ab") as out:
        done = subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=out, timeout=timeout,
                              check=False)
    raw = _last_json(done.stdout.decode(errors="replace"))
    if raw is None:
        raise RuntimeError(f"the retraining trigger ({command[1]}) exited {done.returncode} without a JSON "
                           f"answer; see {log}")
    return {"via": "bounty retrain --wait --json" if has_cli else "workers.retraining.retrain (library)",
            **_normalised_run(raw), "raw": raw}


_LIBRARY_RETRAIN = """
import json
from marketplace.runtime import open_runtime
from marketplace.schema import RetrainTrigger
from workers.retraining import retrain
rt = open_runtime()
try:
    print(json.dumps(retrain(rt, RetrainTrigger.MANUAL).to_json()))
finally:
    rt.close()
"""


def _normalised_run(raw: dict[str, Any]) -> dict[str, Any]:
    """The library's RetrainResult (status succeeded/rejected/failed/skipped) or the CLI's answer
    (status deployed/rejected/skipped) in one shape."""
    status = str(raw.get("status"))
    status = {"succeeded": "deployed"}.get(status, status)
    reasons = raw.get("reasons") or raw.get("gate_reasons")
    if reasons is None:
        text = raw.get("reason") or raw.get("error")
        reasons = [part for part in str(text).split("; ") if part] if text else []
    metrics = raw.get("metrics") or {}
    checks = metrics.get("checks") or raw.get("checks")
    return {"status": status, "version": raw.get("version", raw.get("model_version")),
            "weights_sha256": raw.get("weights_sha256"), "reasons": reasons, "checks": checks}


def _last_json(text: str) -> dict[str, Any] | None:
    """The JSON object a command printed (the whole output, or its last line that parses)."""
    try:
        found = json.loads(text)
        return found if isinstance(found, dict) else None
    except ValueError:
        pass
    for line in reversed(text.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return None


def live_models(url: str) -> dict[int, str | None]:
    """Each bounty's live contract's model (weights hash), from GET /bounties."""
    return {int(b["id"]): b["weights_sha256"] for b in httpx.get(f"{url}/bounties", timeout=60).json()}


def deployed_model(database_url: str, weights_sha256: str | None, version: int | None) -> tuple[str, str]:
    """The `models` row of a run's new model, by hash or else by version: its hash and artifact path."""
    from sqlalchemy import select

    from marketplace.db import make_engine, session_scope
    from marketplace.schema import ModelVersion

    engine = make_engine(database_url)
    try:
        with session_scope(engine) as session:
            found = session.execute(select(ModelVersion.weights_sha256, ModelVersion.artifact_path).where(
                ModelVersion.weights_sha256 == weights_sha256 if weights_sha256 else ModelVersion.version == version
            )).first()
    finally:
        engine.dispose()
    if found is None:
        raise RuntimeError(f"no models row holds the deployed model ({weights_sha256 or f'version {version}'})")
    return str(found[0]), str(found[1])


def check_all_books(home: Path, url: str, answers: list[dict[str, Any]], bounties: dict[int, int]
                    ) -> dict[str, Any]:
    """tests/support/load.check_books for each bounty: every paid image paid once and kept once, and budget -
    payouts - fees equal to the live contract's balance in the database, the API and on the chain."""
    from marketplace.runtime import Runtime
    from marketplace.settings import Settings
    from tests.support.load import check_books

    rt = Runtime(Settings(_env_file=None, home=home))  # type: ignore[call-arg]
    try:
        failures: list[str] = []
        for digit, bounty_id in bounties.items():
            ids = [a["id"] for a in answers if a["code"] == 202 and a["digit"] == digit]
            failures += [f"bounty {bounty_id}: {f}" for f in check_books(rt, url, bounty_id, ids, 0)["failures"]]
        return {"balanced": not failures, "failures": failures}
    finally:
        rt.close()


def classify_via_api(url: str, crowd: Crowd, indices: np.ndarray, bounties: dict[int, int], clients: int
                     ) -> dict[str, Any]:
    """POST /classify (the dry run, nothing stored) of each image for its digit's bounty: the live contract's
    reading."""
    with httpx.Client(base_url=url, timeout=120) as http, ThreadPoolExecutor(clients) as pool:
        def one(i: int) -> tuple[int, str]:
            r = http.post("/classify", files={"image": ("digit.png", crowd.pngs[i], "image/png")},
                          data={"bounty_id": str(bounties[int(crowd.labels[i])])})
            r.raise_for_status()
            return int(r.json()["label"]), str(r.json()["weights_sha256"])

        found = list(pool.map(one, [int(i) for i in indices]))
    labels = np.array([f[0] for f in found])
    return {"images": len(indices), "accuracy": _ratio((labels == crowd.labels[indices]).sum(), len(indices)),
            "models": sorted({f[1][:12] for f in found})}


# -- 3. judging models -----------------------------------------------------------------------------------------

def evaluate(path: str | None, crowd: Crowd, held: np.ndarray, mnist: Any) -> dict[str, Any]:
    """An artifact's integer model (the shipped one when `path` is None) on the held aside and on MNIST test."""
    from model.artifact import load_artifact
    from model.reference import classify

    artifact = load_artifact(path) if path else load_artifact()
    held_label, _ = classify(artifact.integer, crowd.pixels[held])
    held_right = held_label == crowd.labels[held]
    test_label, _ = classify(artifact.integer, mnist.x_test.reshape(-1, 784))
    test_right = test_label == mnist.y_test
    return {"version": artifact.version, "weights_sha256": artifact.weights_sha256[:12],
            "crowd_held_aside_accuracy": _ratio(held_right.sum(), len(held)),
            "crowd_held_aside_per_digit": {d: _ratio(held_right[crowd.labels[held] == d].sum(),
                                                     (crowd.labels[held] == d).sum()) for d in range(10)},
            "mnist_test_accuracy": _ratio(test_right.sum(), len(test_right)),
            "mnist_test_per_digit": {d: _ratio(test_right[mnist.y_test == d].sum(), (mnist.y_test == d).sum())
                                     for d in range(10)}}


def _ratio(part: Any, whole: Any) -> float | None:
    return round(float(part) / float(whole), 4) if whole else None


def _tally(answers: list[dict[str, Any]]) -> dict[str, Any]:
    paid = [a for a in answers if a["code"] == 202]
    refused: dict[str, int] = {}
    for a in answers:
        if a["code"] != 202:
            refused[a["reason"]] = refused.get(a["reason"], 0) + 1
    return {"submitted": len(answers), "paid": len(paid), "appealed": sum(a["appealed"] for a in answers),
            "paid_on_appeal": sum(a["appealed"] and a["code"] == 202 for a in answers),
            "refused_by_reason": dict(sorted(refused.items()))}


# -- the run -----------------------------------------------------------------------------------------------------

def run_loop(crowd: Crowd, submitted: np.ndarray, held: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    from model.data import load_mnist

    started = time.monotonic()
    phases: dict[str, float] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-crowd-"))
    home = tmp / "home"
    home.mkdir()
    extra = {"BOUNTY_QUOTA_PER_PAYEE_PER_HOUR": "0", "BOUNTY_QUOTA_PER_CLIENT_PER_HOUR": "0"}
    if args.appeals_need_review:
        extra["BOUNTY_APPEALS_NEED_REVIEW"] = "true"
    env = server_env(home, **extra)
    server = None
    try:
        per_digit = np.bincount(crowd.labels[submitted], minlength=10)
        bounties = {d: int(create_bounty_cli(env, [d], PAYOUT, int(per_digit[d]) * (PAYOUT + MAX_FEE) + 200_000,
                                             vetted=True)["id"]) for d in range(10)}
        phases["create_bounties_s"] = time.monotonic() - started
        server, url = start_server(env, tmp / "server.log")
        database_url = _database_url(env)
        t = time.monotonic()
        answers = submit_crowd(url, crowd, submitted, bounties, args.clients)
        approved = approve_held_appeals(env, answers)
        phases["submit_s"] = time.monotonic() - t
        t = time.monotonic()
        paid_ids = [a["id"] for a in answers if a["code"] == 202]
        kept = wait_persisted(database_url, paid_ids, timeout=600 + 2 * len(paid_ids))
        phases["confirm_and_persist_s"] = time.monotonic() - t
        t = time.monotonic()
        run = trigger_retrain(env, tmp / "retrain.log")
        phases["retrain_s"] = time.monotonic() - t
        t = time.monotonic()
        deployed_path = None
        via_api = None
        if run["status"] == "deployed":
            new, deployed_path = deployed_model(database_url, run["weights_sha256"], run["version"])
            wait_for("every bounty's live contract to run the new model",
                     lambda: set(live_models(url).values()) == {new}, timeout=300, step=1.0)
            via_api = classify_via_api(url, crowd, held, bounties, args.clients)
        phases["redeploy_s"] = time.monotonic() - t
        books = httpx.get(f"{url}/bounties", timeout=60).json()
        balanced = check_all_books(home, url, answers, bounties)
        mnist = load_mnist()
        shipped = evaluate(None, crowd, held, mnist)
        deployed = evaluate(deployed_path, crowd, held, mnist) if deployed_path else None  # before home goes
    finally:
        if server is not None:
            server.stop()
        if args.keep_home:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    gain = (round(100 * (deployed["crowd_held_aside_accuracy"] - shipped["crowd_held_aside_accuracy"]), 2)
            if deployed else 0.0)
    payouts = sum(b["paid_sats"] for b in books)
    spent = sum(b["budget_sats"] - b["remaining_sats"] for b in books)  # budgets are net of owner-tx fees
    return {
        "images": {**_tally(answers), "appeals_approved_by_review": len(approved),
                   "per_digit": {d: _tally([a for a in answers if a["digit"] == d]) for d in range(10)}},
        "kept_as_training_images": kept,
        "sats": {"payouts": payouts, "submission_fees": spent - payouts, "spent": spent},
        "books": balanced,
        "retraining": {k: v for k, v in run.items() if k != "raw"},
        "retrain_result": run["raw"],
        "shipped": shipped,
        "deployed": deployed,
        "deployed_read_through_api": via_api,
        "gain_points_crowd_held_aside": gain,
        "done_when": {"gain_at_least_2_points": gain >= 2.0,
                      "mnist_test_at_least_98": bool(deployed and deployed["mnist_test_accuracy"] >= 0.98)},
        "phases_s": {k: round(v, 1) for k, v in phases.items()},
        "home": str(tmp) if args.keep_home else None,
    }


def _database_url(env: dict[str, str]) -> str:
    """The service's database URL under `env` (the settings' own default: SQLite under BOUNTY_HOME)."""
    done = subprocess.run([sys.executable, "-c", "from marketplace.settings import get_settings; "
                           "print(get_settings().database)"], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the split's seed")
    parser.add_argument("--limit", type=int, default=None, help="submit at most this many images per digit")
    parser.add_argument("--clients", type=int, default=4, help="threads sending uploads")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary BOUNTY_HOME (and logs)")
    parser.add_argument("--screen-only", action="store_true", help="only the library screen, no service")
    parser.add_argument("--appeals-need-review", action="store_true",
                        help="run the service with BOUNTY_APPEALS_NEED_REVIEW=true and approve appeals with the CLI")
    args = parser.parse_args()

    started = time.monotonic()
    crowd = load_crowd()
    submitted, held = split(crowd.labels, args.seed)
    if args.limit is not None:
        submitted = np.sort(np.concatenate([submitted[crowd.labels[submitted] == d][:args.limit] for d in range(10)]))
    result: dict[str, Any] = {"crowd": {"source": CREDIT, "images": len(crowd), "submitted": len(submitted),
                                        "held_aside": len(held), "seed": args.seed, "limit": args.limit},
                              "screen": screen(crowd, submitted, held)}
    if not args.screen_only:
        result.update(run_loop(crowd, submitted, held, args))
    result["wall_time_s"] = round(time.monotonic() - started, 1)
    if args.limit is None and not args.screen_only:
        RESULTS.mkdir(exist_ok=True)
        name = "crowd.json" if args.seed == DEFAULT_SEED else f"crowd-seed{args.seed}.json"
        (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2) if args.json else _summary(result))


def _summary(result: dict[str, Any]) -> str:
    s = result["screen"]["submitted"]["all"]
    lines = [f"crowd: {result['crowd']['submitted']} submitted, {result['crowd']['held_aside']} held aside",
             f"screen (shipped): read right {s['read_right']}, appealable {s['appealable']}, payable {s['payable']}; "
             f"held-aside accuracy {result['screen']['shipped_on_held_aside']['accuracy']}"]
    if "images" in result:
        i, r = result["images"], result["retraining"]
        lines.append(f"loop: paid {i['paid']} of {i['submitted']} ({i['paid_on_appeal']} on appeal of "
                     f"{i['appealed']}); refused {i['refused_by_reason']}")
        lines.append(f"retraining: {r['status']} {r['reasons']}")
        shipped, deployed = result["shipped"], result["deployed"]
        lines.append(f"held aside: shipped {shipped['crowd_held_aside_accuracy']}"
                     + (f", deployed {deployed['crowd_held_aside_accuracy']}" if deployed else "")
                     + f"; gain {result['gain_points_crowd_held_aside']} points; MNIST test shipped "
                     f"{shipped['mnist_test_accuracy']}" + (f", deployed {deployed['mnist_test_accuracy']}"
                                                             if deployed else ""))
    lines.append(f"wall time {result['wall_time_s']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
