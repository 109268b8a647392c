"""Vetted bounties under attack and in honest use, through a real `bounty serve` (embedded default).

    python bench/vetting.py [--honest 40] [--attacks 40] [--clients 8]

What it does, in a fresh BOUNTY_HOME on 127.0.0.1:
- ten vetted bounties, one per digit (payout 500 sats), on a service whose novelty index holds MNIST's training
  images but not its test images: the test images stand in for honest new handwriting the model never saw;
- honest: `--honest` test images of each digit, drawn at random (not only those the classifier reads right),
  each sent to the bounty of its true digit; one the classifier refuses but ranks the true digit second within
  the bounty's appeal gap is appealed, as the web page offers. Paid share = paid / sent;
- attacks: `--attacks` images of each kind in model.adversary (pixel flips and gradient forgeries of test images
  of other digits, blank, one pixel, strokes, noise), each one the public classifier pays; each is sent to the
  bounty of the digit it was crafted for, from its own payout address, then every paid honest image is replayed
  to its bounty by another payee, and 100 MNIST training images are sent as they are;
- `--clients` threads send everything; the time from request to answer (the decision) is measured per request;
- the API's memory at the end of that run, and that of an idle service with one open or one vetted bounty.

Prints one JSON object and writes bench/results/vetting.json. Quotas are off here (they would refuse the attack
flood for its volume, which would hide what the other checks catch).
"""

from __future__ import annotations

import argparse
import json
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

from bench.service import memory  # noqa: E402
from model.adversary import KINDS, craft  # noqa: E402
from model.artifact import load_artifact  # noqa: E402
from model.data import load_mnist  # noqa: E402
from tests.support.load import percentiles  # noqa: E402
from tests.support.processes import create_bounty_cli, server_env, start_server  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PAYOUT = 500
BUDGET = 1_500_000


def address(i: int) -> str:
    from bsv import Network, PrivateKey

    return str(PrivateKey(10_000 + i, network=Network.TESTNET).address())


def send(http: httpx.Client, bounty: int, pixels: np.ndarray, payee: str, appeal: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    r = http.post(f"/bounties/{bounty}/submissions",
                  json={"pixels": [int(p) for p in pixels], "address": payee, "appeal": appeal})
    body = r.json()
    refusal = (body.get("refusal") if r.status_code != 202 else None) or {}
    return {"code": r.status_code, "seconds": time.perf_counter() - started,
            "reason": refusal.get("reason"), "appealable": bool(refusal.get("appealable"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--honest", type=int, default=40, help="honest test images per digit")
    parser.add_argument("--attacks", type=int, default=40, help="attack images per kind")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    data, artifact = load_mnist(), load_artifact()
    rng = np.random.default_rng(args.seed)
    x_test, y_test = data.x_test.reshape(-1, 784), data.y_test
    honest = [(int(d), x_test[i]) for d in range(10)
              for i in rng.choice(np.flatnonzero(y_test == d), args.honest, replace=False)]
    attacks = {kind: craft(kind, artifact, args.attacks, seed=args.seed + k, images=data.x_test[:2000],
                           labels=y_test[:2000]) for k, kind in enumerate(KINDS)}

    with tempfile.TemporaryDirectory(prefix="bench-vetting-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = server_env(home, BOUNTY_NOVELTY_INDEX_MNIST_TEST="false", BOUNTY_QUOTA_PER_PAYEE_PER_HOUR="0",
                         BOUNTY_QUOTA_PER_CLIENT_PER_HOUR="0")
        bounties = {d: int(create_bounty_cli(env, [d], PAYOUT, BUDGET, vetted=True)["id"]) for d in range(10)}
        server, url = start_server(env, Path(tmp) / "server.log")
        try:
            with httpx.Client(base_url=url, timeout=120) as http, ThreadPoolExecutor(args.clients) as pool:
                def honest_one(job: tuple[int, tuple[int, np.ndarray]]) -> dict[str, Any]:
                    i, (digit, pixels) = job
                    first = send(http, bounties[digit], pixels, address(i))
                    if first["code"] == 422 and first["appealable"]:
                        return {**send(http, bounties[digit], pixels, address(i), appeal=True), "appealed": True}
                    return {**first, "appealed": False}

                started = time.perf_counter()
                honest_answers = list(pool.map(honest_one, enumerate(honest)))
                honest_seconds = time.perf_counter() - started
                attack_answers: dict[str, list[dict[str, Any]]] = {}
                for kind, found in attacks.items():
                    jobs = [(bounties[int(c)], img, address(50_000 + j)) for j, (img, c)
                            in enumerate(zip(found.images, found.claimed, strict=True))]
                    attack_answers[kind] = list(pool.map(lambda job: send(http, *job), jobs))
                replays = [(bounties[d], px, address(90_000 + i)) for i, ((d, px), a)
                           in enumerate(zip(honest, honest_answers, strict=True)) if a["code"] == 202]
                attack_answers["replay_of_a_paid_image"] = list(pool.map(lambda job: send(http, *job), replays))
                train = data.x_train.reshape(-1, 784)
                picks = rng.choice(len(train), 100, replace=False)
                attack_answers["mnist_training_image"] = list(pool.map(
                    lambda i: send(http, bounties[int(data.y_train[i])], train[i], address(95_000 + int(i))), picks))
            api_memory = memory(server.pid)
        finally:
            server.stop()

    decisions = [a["seconds"] for a in honest_answers] + [a["seconds"] for answers in attack_answers.values()
                                                          for a in answers]
    paid = sum(a["code"] == 202 for a in honest_answers)
    result = {
        "honest": {"sent": len(honest_answers), "paid": paid, "paid_share": round(paid / len(honest_answers), 4),
                   "appealed": sum(a["appealed"] for a in honest_answers),
                   "paid_on_appeal": sum(a["appealed"] and a["code"] == 202 for a in honest_answers),
                   "refused_by_reason": _reasons([a for a in honest_answers if a["code"] != 202]),
                   "seconds": round(honest_seconds, 1)},
        "attacks": {kind: {"sent": len(answers), "paid": sum(a["code"] == 202 for a in answers),
                           "refused_by_reason": _reasons(answers)} for kind, answers in attack_answers.items()},
        "attacks_paid": sum(a["code"] == 202 for answers in attack_answers.values() for a in answers),
        "attacks_sent": sum(len(answers) for answers in attack_answers.values()),
        "decision_ms": percentiles(decisions),
        "clients": args.clients,
        "api_memory": api_memory,
        "api_memory_idle_one_bounty_mb": {"open": idle_memory(False), "vetted": idle_memory(True)},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "vetting.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def idle_memory(vetted: bool) -> float | None:
    """The RSS (MB) of an idle `bounty serve` with one bounty, open or vetted, once it has loaded what it needs."""
    with tempfile.TemporaryDirectory(prefix="bench-vetting-idle-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = server_env(home, BOUNTY_NOVELTY_INDEX_MNIST_TEST="false")
        create_bounty_cli(env, [7], PAYOUT, 100_000, vetted=vetted)
        server, url = start_server(env, Path(tmp) / "server.log")
        try:
            time.sleep(8)  # the vetting state loads in the background at start
            httpx.get(f"{url}/bounties", timeout=60)
            return memory(server.pid)["rss_mb"]
        finally:
            server.stop()


def _reasons(answers: list[dict[str, Any]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for a in answers:
        key = a["reason"] or ("classifier" if a["code"] == 422 else str(a["code"]))
        found[key] = found.get(key, 0) + 1
    return found


if __name__ == "__main__":
    main()
