"""Helpers for tests/e2e/test_faults.py: the real processes on this machine's PostgreSQL and Redis (db 12), bursts
of submissions over HTTP, restarting the servers (always brought back), and the books check of tests/support/load.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from sqlalchemy import func, select

from marketplace.runtime import Runtime
from marketplace.schema import Payout, Submission, SubmissionStatus, TrainingImage
from marketplace.settings import Settings
from tests.support.databases import PG_ADMIN
from tests.support.load import check_books
from tests.support.processes import BIN, Process, free_port, healthy, wait_for

REDIS_DB = 12  # this machine's Redis: db 11 is the e2e test's, 12 is ours
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"


class Stack:
    """`bounty serve`, `bounty daemon`, a Celery worker and beat, on one PostgreSQL database and Redis db 12."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp, self.url = tmp, url
        self.home = tmp / "home"
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "BOUNTY_HOME": str(self.home), "BOUNTY_DATABASE_URL": url,
                    "BOUNTY_REDIS_URL": REDIS_URL, "BOUNTY_RETRAIN_FAST": "true", "BOUNTY_RETRAIN_TOLERANCE": "1",
                    "BOUNTY_RETRAIN_CLASS_TOLERANCE": "1", "BOUNTY_TASK_VISIBILITY_TIMEOUT": "10",
                    "BOUNTY_RATE_LIMIT_PER_MINUTE": "100000", "BOUNTY_RETRAIN_AFTER_IMAGES": "100000",
                    "BOUNTY_RETRAIN_EVERY_SECONDS": "100000", "BOUNTY_BLOCK_INTERVAL": "1000",
                    "BOUNTY_LOG_LEVEL": "WARNING"}
        self.processes: dict[str, Process] = {}
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.rt: Runtime | None = None

    def start(self, name: str, *args: str) -> Process:
        self.processes[name] = Process(list(args), self.env, self.logs / f"{name}.log")
        return self.processes[name]

    def start_api(self) -> None:
        self.start("api", str(BIN / "bounty"), "serve", "--port", str(self.port))

    def start_daemon(self) -> None:
        self.start("daemon", str(BIN / "bounty"), "daemon", "--interval", "0.1")

    def start_worker(self) -> None:
        self.start("worker", str(BIN / "celery"), "-A", "workers.app", "worker", "--concurrency", "1",
                   "--loglevel", "WARNING")

    def start_beat(self) -> None:
        self.start("beat", str(BIN / "celery"), "-A", "workers.app", "beat", "--loglevel", "WARNING",
                   "--schedule", str(self.tmp / "beat-schedule"))

    def start_all(self) -> None:
        self.start_api()
        self.start_daemon()
        self.start_worker()
        self.start_beat()
        wait_for("the API", lambda: healthy(self.api), 60)
        self.rt = Runtime(Settings(_env_file=None, home=self.home, database_url=self.url,  # type: ignore[call-arg]
                                   redis_url=REDIS_URL))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.processes[name].kill(sig)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.stop()
        if self.rt is not None:
            self.rt.close()

    # -- traffic ---------------------------------------------------------------------------------------

    def submit(self, bounty_id: int, image: Any, address: str) -> tuple[int, dict]:
        try:
            response = httpx.post(f"{self.api}/bounties/{bounty_id}/submissions", timeout=30,
                                  json={"pixels": [int(v) for v in image], "address": address})
        except httpx.HTTPError as exc:  # the API itself unreachable
            return -1, {"error": type(exc).__name__}
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.text[:200]}
        return response.status_code, body

    def burst(self, bounty_id: int, images: Sequence[Any], address: str, during: Callable[[], None] | None = None,
              concurrency: int = 4) -> list[tuple[int, dict]]:
        """Send `images` concurrently; `during()` runs in the test thread once about a third went out."""
        with ThreadPoolExecutor(concurrency) as pool:
            futures = []
            for i, image in enumerate(images):
                futures.append(pool.submit(self.submit, bounty_id, image, address))
                if during is not None and i == len(images) // 3:
                    during()
                time.sleep(0.05)
            return [f.result() for f in futures]

    # -- the books ------------------------------------------------------------------------------------

    def mine(self, blocks: int = 1) -> None:
        assert self.rt is not None and self.rt.local_chain is not None
        self.rt.local_chain.mine(blocks)

    def submission_ids(self, bounty_id: int) -> list[int]:
        assert self.rt is not None
        with self.rt.session() as session:
            return list(session.scalars(select(Submission.id).where(Submission.bounty_id == bounty_id)
                                        .order_by(Submission.id)))

    def settled(self, bounty_id: int) -> bool:
        """Every submission of the bounty confirmed and kept for training (mines a block per look)."""
        assert self.rt is not None
        self.mine(1)
        with self.rt.session() as session:
            total = session.scalar(select(func.count(Submission.id)).where(Submission.bounty_id == bounty_id))
            confirmed = session.scalar(select(func.count(Submission.id)).where(
                Submission.bounty_id == bounty_id, Submission.status == SubmissionStatus.CONFIRMED))
            kept = session.scalar(select(func.count(TrainingImage.id)).where(TrainingImage.bounty_id == bounty_id))
            return bool(total) and total == confirmed == kept

    def books(self, bounty_id: int) -> dict[str, Any]:
        """tests/support/load.py's check: every submission paid once and kept once; budget - paid - fees == the live
        contract's balance in the database, the API and on chain."""
        assert self.rt is not None
        result = check_books(self.rt, self.api, bounty_id, self.submission_ids(bounty_id), 0)
        assert result["failures"] == [], result
        assert result["balanced"], result
        return result

    def counts(self) -> dict[str, int]:
        assert self.rt is not None
        with self.rt.session() as session:
            return {name: int(session.scalar(select(func.count(col))) or 0) for name, col in
                    (("submissions", Submission.id), ("payouts", Payout.id), ("images", TrainingImage.id))}


# -- the servers ------------------------------------------------------------------------------------------

PG_VERSION = sorted(os.listdir("/etc/postgresql"))[-1] if os.path.isdir("/etc/postgresql") else ""


def pg_ctl(action: str) -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, "main", action], check=True,
                   timeout=60, capture_output=True)


def pg_up() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@contextmanager
def postgres_down() -> Iterator[None]:
    """PostgreSQL stopped for the body; started again (and answering) whatever happens."""
    try:
        pg_ctl("stop")
        yield
    finally:
        if not pg_up():
            try:
                pg_ctl("start")
            except subprocess.CalledProcessError:
                time.sleep(1)
                pg_ctl("start")
        wait_for("PostgreSQL back", pg_up, 60)


def redis_up() -> bool:
    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping())
    except redis.RedisError:
        return False


@contextmanager
def redis_down() -> Iterator[None]:
    """Redis shut down for the body; started again (and answering) whatever happens."""
    try:
        subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], timeout=20, capture_output=True)
        wait_for("Redis down", lambda: not redis_up(), 20)
        yield
    finally:
        if not redis_up():
            subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
                            "--save", "", "--appendonly", "no"], timeout=20, check=True, capture_output=True)
        wait_for("Redis back", redis_up, 30)


# -- a retraining run that dies during its redeploy (run as `python -m tests.support.faults MODE`) ------------

def _retrain_and_die(mode: str) -> None:
    """Run `workers.retraining.retrain` and SIGKILL this very process at a chosen point of the redeploy:
    `after-broadcast`: the first migration transaction is on the chain, its database commit not done;
    `after-commit`: the first bounty's migration is committed, the next bounty not started."""
    import workers.retraining.run as retraining
    from marketplace.runtime import open_runtime
    from marketplace.schema import RetrainTrigger
    from marketplace.settings import get_settings

    rt = open_runtime(get_settings())
    if mode == "after-broadcast":
        original = rt.chain.broadcast

        def broadcast(tx: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(tx, *args, **kwargs)  # the only broadcasts of a run are its migrations
            print(f"broadcast {tx.txid()}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
            return result

        rt.chain.broadcast = broadcast  # type: ignore[method-assign]
    elif mode == "after-commit":
        real = retraining.redeploy

        def redeploy(*args: Any, **kwargs: Any) -> Any:
            result = real(*args, **kwargs)  # committed when it returns
            print(f"migrated {result.migrate_txid}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
            return result

        retraining.redeploy = redeploy
    print(retraining.retrain(rt, RetrainTrigger.MANUAL), flush=True)


if __name__ == "__main__":
    _retrain_and_die(sys.argv[1])
