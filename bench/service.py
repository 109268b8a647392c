"""Service figures: accepted submissions per second end to end (HTTP in, persisted training_images row out)
and their latency at 1, 8 and 32 concurrent clients, for both bounty shapes side by side (a prize pool and
the chain covenant), on the embedded default and on PostgreSQL + Redis + one Celery worker of two processes, as
docker-compose.yml runs it (+ `bounty daemon` and Celery beat, as separate processes, as
tests/e2e/test_workers_e2e.py starts them); the resident memory of
the API process (and whether TensorFlow is loaded in it) and of the worker; optionally (`--retrain`) the wall
time of one retraining cycle with the default (non-fast) settings.

    python bench/service.py [--parts embedded,stack] [--shapes pool,chain] [--prizes 64] [--retrain]
                            [--per-level 40] [--levels 1,8,32]

Prints a Markdown table and writes bench/results/service.json (and service.md): per part (embedded, stack)
its memory figures and, under "shapes", each shape's bounty and levels. A run of some parts or shapes keeps
the figures of the others already in the JSON file (a file from before the shapes counts as chain figures).

How it measures. Everything on 127.0.0.1, in a fresh temporary BOUNTY_HOME with a private copy of the
shipped model, running this checkout's code (PYTHONPATH is set for every child process; the report names
the `marketplace` package the children import). Per shape, one open bounty for the digit 7 (payout 500
sats), both created before the server starts and each funded for all its levels; the shapes run one after
the other against the same processes. A pool bounty keeps at most `--prizes` (K) prizes live; its deploy
creates K. K = 64 by default: a prize being claimed still counts as live, and the keeper (after each
watcher step: every 0.2 s in the daemon, 0.5 s embedded) refills only when the live prizes fall to half its
target (the last minute's claims, at most K), so at full rate a refill comes once 32 are live, which the
32-client level's claims in flight may all hold; with a smaller K they wait for prizes (in 50 ms polls, up
to 5 s, then 409 busy). A larger K makes each refill bigger (one transaction of K minus the live prizes,
each a ~42 KB script) and keeps more of the budget in prizes.
Each level sends `per-level` MNIST test images the model reads as a 7 (distinct across levels and shapes
while the set lasts) from N client threads (an httpx client
each). A poller reads training_images every 0.1 s and notes when each submission's row appears. A block
is mined every second: by `bounty serve` itself when embedded (BOUNTY_BLOCK_INTERVAL=1), by this script
on the stack (there, `bounty serve` and `bounty daemon` do not mine), and one confirmation is required
(the default), so end-to-end latency includes waiting for the next block (0-1 s) and the watcher's poll.
Throughput = accepted / (last row persisted - first request sent), so each level also pays one block wait
and the worker's hand-off at its end (about 1-2 s): with a few dozen images per level that tail dominates a
fast shape's figure; a larger `--per-level` amortises it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.databases import fresh_database  # noqa: E402 - after the path is set
from tests.support.load import TESTNET_ADDRESS, _images, percentiles  # noqa: E402
from tests.support.processes import (  # noqa: E402
    BIN,
    Process,
    create_bounty_cli,
    server_env,
    snapshot_model,
    start_server,
)

RESULTS = Path(__file__).resolve().parent / "results"
REDIS_DB = 11
PAYOUT = 500
SHAPES = ("pool", "chain")
PRIZES = 64  # a pool bounty's K: see the module docstring


# -- process memory ------------------------------------------------------------------------------------

def memory(pid: int) -> dict[str, Any]:
    """VmRSS and VmHWM (peak) in MB from /proc/<pid>/status, and whether TensorFlow's libraries are mapped."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {"pid": pid, "rss_mb": fields.get("VmRSS"), "peak_rss_mb": fields.get("VmHWM"),
            "tensorflow_loaded": "tensorflow" in maps}


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


# -- CPU per accepted image -----------------------------------------------------------------------------

Meter = Callable[[], dict[str, dict[int, float]]]  # CPU seconds each process used so far, by role
HZ = os.sysconf("SC_CLK_TCK")


def cpu_of(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds each process used so far (a process already gone is left out)."""
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / HZ
    return used


def with_children(pid: int) -> list[int]:
    try:
        return [pid, *children(pid)]
    except OSError:
        return [pid]


def this_process() -> dict[int, float]:
    """This benchmark's own CPU: its client threads and the poller."""
    times = os.times()
    return {os.getpid(): times.user + times.system}


def postgres_backends(db_url: str) -> Callable[[], list[int]]:
    """The server processes serving the benchmark's database (one per connection)."""
    import psycopg

    plain = db_url.replace("postgresql+psycopg", "postgresql")

    def pids() -> list[int]:
        with psycopg.connect(plain, autocommit=True) as conn:
            return [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                               "AND pid <> pg_backend_pid()")]
    return pids


def per_image(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]], images: int
              ) -> dict[str, float]:
    """Milliseconds of CPU per accepted image, by role, and their total: each process's use between the two
    readings (one started meanwhile counts from 0; one that ended meanwhile, a database connection closed, is
    left out, so a figure is a lower bound)."""
    used = {role: round(1000 * sum(cpu - before.get(role, {}).get(pid, 0.0) for pid, cpu in pids.items())
                        / max(images, 1), 1) for role, pids in after.items()}
    return {**used, "total": round(sum(used.values()), 1)}


# -- one level -----------------------------------------------------------------------------------------

class Persisted:
    """Polls training_images and notes (monotonic clock) when each watched submission's row appears."""

    def __init__(self, url: str) -> None:
        from marketplace.db import make_engine

        self.engine = make_engine(url)
        self.seen: dict[int, float] = {}

    def wait(self, ids: list[int], deadline: float) -> None:
        from sqlalchemy import select

        from marketplace.db import session_scope
        from marketplace.schema import TrainingImage

        missing = set(ids) - set(self.seen)
        while missing and time.monotonic() < deadline:
            with session_scope(self.engine) as session:
                found = session.scalars(select(TrainingImage.submission_id)
                                        .where(TrainingImage.submission_id.in_(list(missing)))).all()
            now = time.monotonic()
            for sid in found:
                self.seen.setdefault(sid, now)
            missing -= set(found)
            time.sleep(0.1)

    def close(self) -> None:
        self.engine.dispose()


def level(url: str, bounty_id: int, images: np.ndarray, clients: int, persisted: Persisted, meter: Meter,
          timeout: float = 180) -> dict[str, Any]:
    """Send every image once from `clients` threads; wait until each accepted one is persisted. `meter` tells the
    CPU each process used, read before and after."""
    local = threading.local()
    made: list[httpx.Client] = []
    guard = threading.Lock()
    started: dict[int, float] = {}
    http: list[float] = []
    errors: list[str] = []
    ids: list[int] = []
    deadline = time.monotonic() + timeout
    stop_polling = threading.Event()

    def poll() -> None:  # note persisted rows while the requests are still going
        while not stop_polling.is_set() and time.monotonic() < deadline:
            with guard:
                watched = list(ids)
            persisted.wait(watched, min(deadline, time.monotonic() + 0.2))
            stop_polling.wait(0.1)

    def one(image: np.ndarray) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=120)
            with guard:
                made.append(client)
        t0 = time.monotonic()
        try:
            response = client.post(f"{url}/bounties/{bounty_id}/submissions",
                                   json={"pixels": image.tolist(), "address": TESTNET_ADDRESS})
        except httpx.HTTPError as exc:
            with guard:
                errors.append(f"{type(exc).__name__}: {exc}")
            return
        took = time.monotonic() - t0
        with guard:
            if response.status_code != 202:
                errors.append(f"{response.status_code}: {response.text[:200]}")
                return
            sid = int(response.json()["id"])
            started[sid] = t0
            ids.append(sid)
            http.append(took)

    cpu_before = meter()
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    first = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(one, images))
    finally:
        for client in made:
            client.close()
    sent = time.monotonic()
    persisted.wait(list(ids), deadline)
    stop_polling.set()
    poller.join(timeout=5)
    done = [sid for sid in ids if sid in persisted.seen]
    cpu = per_image(cpu_before, meter(), len(done))
    last = max((persisted.seen[sid] for sid in done), default=sent)
    e2e = [persisted.seen[sid] - started[sid] for sid in done]
    return {"clients": clients, "submitted": len(images), "accepted_202": len(ids), "persisted": len(done),
            "errors": errors[:5], "http_wall_s": round(sent - first, 2),
            "accepted_per_s_http": round(len(ids) / (sent - first), 2),
            "accepted_per_s_e2e": round(len(done) / (last - first), 2) if done else None,
            "http_latency_ms": percentiles(http), "e2e_latency_ms": percentiles(e2e), "cpu_ms_per_accepted": cpu}


def run_levels(url: str, bounty_id: int, db_url: str, levels: list[int], per_level: int, sevens: np.ndarray,
               start: int, meter: Meter, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each level sends the next `per_level` of `sevens` from image `start` on (wrapping round when it runs out)."""
    persisted = Persisted(db_url)
    results = []
    try:
        for i, clients in enumerate(levels):
            at = start + i * per_level
            images = np.take(sevens, range(at, at + per_level), axis=0, mode="wrap")
            result = level(url, bounty_id, images, clients, persisted, meter)
            say(f"  {clients:>2} clients: {result['accepted_per_s_e2e']} accepted/s end to end, "
                f"http p50 {result['http_latency_ms']['p50']} ms, e2e p50 {result['e2e_latency_ms']['p50']} ms, "
                f"CPU ms per image {result['cpu_ms_per_accepted']}"
                + (f", {len(result['errors'])}+ errors, first: {result['errors'][0]}" if result["errors"] else ""))
            results.append(result)
    finally:
        persisted.close()
    return results


def run_shapes(url: str, bounties: dict[str, dict[str, Any]], db_url: str, levels: list[int], per_level: int,
               model: Path, meter: Meter, say: Callable[[str], None]) -> dict[str, Any]:
    """Every shape's levels against its bounty, one shape after the other; each shape's bounty as the API shows
    it afterwards (a pool's live prizes and owner transactions tell whether the keeper kept up)."""
    sevens = _images([7], 0, model).accepted
    shapes = {}
    for n, (shape, bounty) in enumerate(bounties.items()):
        say(f" {shape} bounty {bounty['id']}" + (f" (K = {bounty['prizes']} prizes)" if shape == "pool" else ""))
        rows = run_levels(url, bounty["id"], db_url, levels, per_level, sevens, n * len(levels) * per_level, meter,
                          say)
        after = httpx.get(f"{url}/bounties/{bounty['id']}", timeout=30).json()
        keep = ("id", "shape", "prizes", "live_prizes", "owner_transactions", "images_left", "cost_sats_per_image",
                "accepted_count")
        shapes[shape] = {"bounty": {k: after.get(k) for k in keep}, "levels": rows}
    return shapes


# -- the two set-ups -----------------------------------------------------------------------------------

def budget_for(levels: list[int], per_level: int) -> int:
    """Enough for every level of either shape (a chain spend's fee is about 9,000 sats at 100 sat/kB; a pool
    image about 4,500 sats: its claim's fee and its prize's share of the creation fee)."""
    return len(levels) * per_level * (PAYOUT + 9_000) + 1_000_000


def code_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with this checkout first on PYTHONPATH: the virtualenv's `bounty` and `celery` may be an editable
    install of another checkout."""
    return {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])}


def code_in(env: dict[str, str]) -> str:
    """The `marketplace` package a child process with `env` imports."""
    return subprocess.run([sys.executable, "-c", "import marketplace; print(marketplace.__file__)"], env=env,
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def create_bounties(env: dict[str, str], shapes: list[str], prizes: int, levels: list[int], per_level: int,
                    say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """One open bounty for the digit 7 per shape, each funded for all the levels (checked)."""
    bounties = {}
    for shape in shapes:
        bounty = create_bounty_cli(env, [7], PAYOUT, budget_for(levels, per_level), shape=shape,
                                   prizes=prizes if shape == "pool" else None)
        if bounty["shape"] != shape or bounty["images_left"] < len(levels) * per_level:
            raise RuntimeError(f"the {shape} bounty is not what the levels need: {bounty}")
        bounties[shape] = bounty
    say(f" code: {code_in(env)}")
    return bounties


def bench_embedded(work: Path, levels: list[int], per_level: int, shapes: list[str], prizes: int,
                   say: Callable[[str], None]) -> dict[str, Any]:
    say("embedded default: bounty serve (SQLite, dev chain mined every 1 s, in-process workers)")
    env = code_env(server_env(work / "home"))
    model = Path(env["BOUNTY_MODEL_PATH"])
    bounties = create_bounties(env, shapes, prizes, levels, per_level, say)
    server, url = start_server(env, work / "serve.log")
    try:
        idle = memory(server.pid)

        def meter() -> dict[str, float]:
            return {"service": cpu_of(with_children(server.pid)), "clients": this_process()}

        found = run_shapes(url, bounties, f"sqlite:///{work / 'home' / 'bounty.sqlite'}", levels, per_level,
                           model, meter, say)
        return {"shapes": found, "code": code_in(env), "api_memory_idle": idle, "api_memory": memory(server.pid),
                "worker_memory": "in the API process (embedded Celery threads)"}
    finally:
        server.stop()


def bench_stack(work: Path, levels: list[int], per_level: int, shapes: list[str], prizes: int,
                say: Callable[[str], None]) -> dict[str, Any]:
    import redis

    from marketplace import migrate
    from marketplace.chain import LocalChain

    say("stack: PostgreSQL + Redis + bounty serve + bounty daemon + 1 Celery worker (2 processes) + beat")
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    processes: list[Process] = []
    with fresh_database("bounty_bench") as db_url:
        migrate.upgrade(db_url)
        redis.Redis.from_url(broker).flushdb()
        env = code_env(server_env(work / "home", BOUNTY_DATABASE_URL=db_url, BOUNTY_REDIS_URL=broker,
                                  BOUNTY_TASK_VISIBILITY_TIMEOUT="60"))
        model = Path(env["BOUNTY_MODEL_PATH"])
        bounties = create_bounties(env, shapes, prizes, levels, per_level, say)
        chain = LocalChain(work / "home" / "chain.sqlite")
        miner = None
        try:
            server, url = start_server(env, work / "serve.log")
            processes.append(server)
            daemon = Process([str(BIN / "bounty"), "daemon", "--interval", "0.2"], env, work / "daemon.log")
            processes.append(daemon)
            worker = Process([str(BIN / "celery"), "-A", "workers.app", "worker", "--concurrency", "2",
                              "--loglevel", "WARNING"], env, work / "worker.log")
            processes.append(worker)
            beat = Process([str(BIN / "celery"), "-A", "workers.app", "beat", "--loglevel", "WARNING",
                            "--schedule", str(work / "beat-schedule")], env, work / "beat.log")
            processes.append(beat)
            miner = chain.mine_every(1.0)
            time.sleep(5)  # the worker and the daemon start (imports, broker connection)
            idle = memory(server.pid)
            backends = postgres_backends(db_url)
            redis_pid = int(redis.Redis.from_url(broker).info("server")["process_id"])

            def meter() -> dict[str, float]:
                return {"api": cpu_of([server.pid]), "daemon": cpu_of([daemon.pid]),
                        "worker": cpu_of(with_children(worker.pid)), "beat": cpu_of([beat.pid]),
                        "postgres": cpu_of(backends()), "redis": cpu_of([redis_pid]), "clients": this_process()}

            found = run_shapes(url, bounties, db_url, levels, per_level, model, meter, say)
            pool = children(worker.pid)
            return {"shapes": found, "code": code_in(env), "api_memory_idle": idle, "api_memory": memory(server.pid),
                    "worker_memory": {"main": memory(worker.pid), "pool": [memory(p) for p in pool]}}
        finally:
            if miner is not None:
                miner.stop()
            for process in reversed(processes):
                process.stop()
            chain.close()
            redis.Redis.from_url(broker).flushdb()


def bench_retrain(work: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """One retraining cycle, default settings, on a runtime with one active bounty (no accepted images yet)."""
    from marketplace.bounties import create_bounty
    from marketplace.runtime import open_runtime
    from marketplace.schema import RetrainTrigger
    from marketplace.settings import Settings
    from model.data import load_mnist
    from workers.retraining import retrain

    say("retraining: one cycle with the default settings (fine-tune, export, compile, verify, redeploy)")
    model = snapshot_model(work / "model")
    settings = Settings(_env_file=None, home=work / "home", model_path=model)  # type: ignore[call-arg]
    rt = open_runtime(settings)
    try:
        create_bounty(rt, [7], PAYOUT, 1_000_000)
        data = load_mnist()
        started = time.monotonic()
        summary = retrain(rt, RetrainTrigger.MANUAL, data=data).to_json()
        wall = time.monotonic() - started
    finally:
        rt.close()
    say(f"  {summary.get('status')} in {wall:.1f} s")
    keep = {k: summary.get(k) for k in ("status", "model_version", "reason", "error", "redeployed")}
    return {"wall_s": round(wall, 1), "summary": json.loads(json.dumps(keep, default=str)),
            "settings": {"retrain_fast": settings.retrain_fast, "retrain_from_scratch": settings.retrain_from_scratch,
                         "retrain_verify_images": settings.retrain_verify_images},
            "process_memory_after": memory(os.getpid())}


# -- report --------------------------------------------------------------------------------------------

GOALS = {"embedded": 30, "stack": 50}  # issue 14: accepted/s end to end for one pool bounty
GOAL_HTTP_P50_MS = 100  # ... with the HTTP median at 8 clients under this
CPU_ROLES = ("service", "api", "daemon", "worker", "beat", "postgres", "redis", "clients", "total")


def migrate(results: dict[str, Any]) -> dict[str, Any]:
    """A results file from before the shapes: a part's levels were the chain shape's."""
    for part in ("embedded", "stack"):
        got = results.get(part)
        if got and "levels" in got:
            got["shapes"] = {"chain": {"levels": got.pop("levels")}}
    return results


def goals(results: dict[str, Any]) -> list[str]:
    """Issue 14's goals for the pool shape, met or not, from the levels measured."""
    out = []
    for part, goal in GOALS.items():
        rows = (results.get(part) or {}).get("shapes", {}).get("pool", {}).get("levels", [])
        if not rows:
            continue
        best = max((r["accepted_per_s_e2e"] or 0 for r in rows), default=0)
        at8 = next((r["http_latency_ms"]["p50"] for r in rows if r["clients"] == 8), None)
        out.append(f"- {part}, pool: best {best} accepted/s end to end (goal {goal}: "
                   f"{'met' if best >= goal else 'not met'}); HTTP p50 at 8 clients "
                   + (f"{at8} ms (goal < {GOAL_HTTP_P50_MS}: {'met' if at8 < GOAL_HTTP_P50_MS else 'not met'})"
                      if at8 is not None else "not measured"))
    return out


def markdown(results: dict[str, Any]) -> str:
    out = ["| set-up | shape | clients | accepted | accepted/s (e2e) | accepted/s (HTTP) | HTTP p50 / p95 / p99 ms | "
           "e2e p50 / p95 / p99 ms |", "|---|---|---|---|---|---|---|---|"]
    for part in ("embedded", "stack"):
        for shape, got in (results.get(part) or {}).get("shapes", {}).items():
            for row in got["levels"]:
                h, e = row["http_latency_ms"], row["e2e_latency_ms"]
                out.append(f"| {part} | {shape} | {row['clients']} | {row['persisted']}/{row['submitted']} | "
                           f"{row['accepted_per_s_e2e']} | {row.get('accepted_per_s_http')} | "
                           f"{h['p50']} / {h['p95']} / {h['p99']} | {e['p50']} / {e['p95']} / {e['p99']} |")
    cpu_rows = [(part, shape, row) for part in ("embedded", "stack")
                for shape, got in (results.get(part) or {}).get("shapes", {}).items() for row in got["levels"]
                if row.get("cpu_ms_per_accepted")]
    if cpu_rows:
        out += ["", "CPU milliseconds per accepted image, by process (user + system; `clients` is this benchmark):",
                "", "| set-up | shape | clients | " + " | ".join(CPU_ROLES) + " |",
                "|---|---|---|" + "---|" * len(CPU_ROLES)]
        for part, shape, row in cpu_rows:
            used = row["cpu_ms_per_accepted"]
            out.append(f"| {part} | {shape} | {row['clients']} | " + " | ".join(str(used.get(r, "")) for r in CPU_ROLES)
                       + " |")
    met = goals(results)
    if met:
        out += ["", "Issue 14's goals for one pool bounty:", *met]
    out += ["", "| process | RSS MB (peak) | TensorFlow loaded |", "|---|---|---|"]
    for part in ("embedded", "stack"):
        got = results.get(part)
        if not got:
            continue
        for name, mem in (("API idle", got["api_memory_idle"]), ("API after the runs", got["api_memory"])):
            out.append(f"| {part} {name} | {mem['rss_mb']} ({mem['peak_rss_mb']}) | {mem['tensorflow_loaded']} |")
        worker = got["worker_memory"]
        if isinstance(worker, dict):
            for mem in [worker["main"], *worker["pool"]]:
                role = "worker main" if mem is worker["main"] else "worker pool child"
                out.append(f"| {part} {role} | {mem['rss_mb']} ({mem['peak_rss_mb']}) | {mem['tensorflow_loaded']} |")
        else:
            out.append(f"| {part} worker | {worker} | |")
    if results.get("retrain"):
        r = results["retrain"]
        out += ["", f"retraining cycle (default settings): {r['wall_s']} s, {r['summary']['status']}"
                    + (f" ({r['summary'].get('reason') or r['summary'].get('error')})"
                       if r["summary"].get("reason") or r["summary"].get("error") else ""),
                "", "| process | RSS MB (peak) | TensorFlow loaded |", "|---|---|---|",
                f"| retraining (what a worker grows to during a run) | {r['process_memory_after']['rss_mb']} "
                f"({r['process_memory_after']['peak_rss_mb']}) | {r['process_memory_after']['tensorflow_loaded']} |"]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="embedded,stack", help="comma-separated: embedded, stack (or none)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated bounty shapes: pool, chain")
    parser.add_argument("--prizes", type=int, default=PRIZES, help="a pool bounty's K (prizes live at most)")
    parser.add_argument("--retrain", action="store_true", help="also time one retraining cycle (minutes)")
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--per-level", type=int, default=40)
    parser.add_argument("--out", default=str(RESULTS / "service.json"))
    parser.add_argument("--work", help="keep the homes and the processes' logs in this new directory (default: a "
                                       "temporary one, removed afterwards)")
    args = parser.parse_args(argv)
    levels = [int(v) for v in args.levels.split(",")]
    parts = [p for p in args.parts.split(",") if p and p != "none"]
    shapes = [s for s in args.shapes.split(",") if s]
    if not shapes or set(shapes) - set(SHAPES):
        parser.error(f"--shapes: some of {', '.join(SHAPES)}")

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    out = Path(args.out)
    results: dict[str, Any] = migrate(json.loads(out.read_text())) if out.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()}
    with contextlib.nullcontext(args.work) if args.work else tempfile.TemporaryDirectory(prefix="bounty-bench-") as tmp:
        for part in parts:
            began = time.monotonic()
            work = Path(tmp) / part
            work.mkdir(parents=True)
            bench = {"embedded": bench_embedded, "stack": bench_stack}[part]
            got = bench(work, levels, args.per_level, shapes, args.prizes, say)
            kept = (results.get(part) or {}).get("shapes", {})  # the shapes this run leaves out
            results[part] = {**got, "shapes": {**{s: v for s, v in kept.items() if s not in shapes}, **got["shapes"]},
                             "wall_s": round(time.monotonic() - began, 1),
                             "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if args.retrain:
            work = Path(tmp) / "retrain"
            work.mkdir(parents=True)
            results["retrain"] = {**bench_retrain(work, say),
                                  "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    table = markdown(results)
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(table + "\n")
    say(f"JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
