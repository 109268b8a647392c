"""Real processes for the end-to-end tests (and bench/): free loopback ports, waiting on a condition, a child
process in its own session with its output in a log file, and an embedded `bounty serve` to test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from model.artifact import DEFAULT_ARTIFACT, load_artifact

BIN = Path(sys.executable).parent  # the virtualenv's `bounty` and `celery`


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout: float = 90.0, step: float = 0.2) -> None:
    """Poll `check` until it holds; an exception from it counts as not yet (a server still coming back) and is
    named if time runs out."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last!r})" if last else ""))
        time.sleep(step)


def healthy(url: str) -> bool:
    """The API at `url` answers /healthz with 200."""
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Process:
    """A child process in its own session, its output appended to a log file; `stop()` ends it (TERM, then
    KILL), `kill(sig)` sends one signal to its whole group and waits for it."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop() and kill()
        self.popen = subprocess.Popen(args, env=env, cwd=cwd, stdout=self._out, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 20) -> None:
        if self.running():
            os.killpg(self.popen.pid, sig)
        self.popen.wait(timeout=timeout)
        self._out.close()

    def stop(self, timeout: float = 15) -> None:
        if self.running():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=timeout)
        self._out.close()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


def snapshot_model(dest: Path, tries: int = 5) -> Path:
    """A private copy of the shipped artifact (model/default may be rewritten while a run goes on), checked
    by loading it (the loader verifies the weights' hash)."""
    dest.mkdir(parents=True, exist_ok=True)
    for attempt in range(tries):
        for name in ("model.json", "weights.npz"):
            shutil.copy2(DEFAULT_ARTIFACT / name, dest / name)
        try:
            load_artifact(dest)
            return dest
        except Exception:
            if attempt == tries - 1:
                raise
            time.sleep(1)
    return dest


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of an embedded `bounty serve` under `home`: no BOUNTY_* variable of the caller, its own
    copy of the shipped model, blocks every second, no rate limit to speak of (all clients share 127.0.0.1),
    quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUNTY_")}
    model = snapshot_model(home.parent / "model")
    env.update({"BOUNTY_HOME": str(home), "BOUNTY_MODEL_PATH": str(model), "BOUNTY_BLOCK_INTERVAL": "1",
                "BOUNTY_RATE_LIMIT_PER_MINUTE": "1000000",
                "BOUNTY_RETRAIN_AFTER_IMAGES": "1000000", "BOUNTY_LOG_LEVEL": "WARNING"})
    env.update(extra)
    return env


def create_bounty_cli(env: dict[str, str], digits: list[int], payout: int, budget: int,
                      cwd: Path | None = None, vetted: bool = False, shape: str | None = None,
                      prizes: int | None = None) -> dict[str, Any]:
    """`bounty create ... --json` in a child process; its JSON answer. Open unless `vetted`: the load and
    pipeline tests replay MNIST images, which a vetted bounty refuses as known. `shape` and `prizes` are passed
    as --shape and --prizes when given (otherwise the CLI's defaults hold)."""
    args = [str(BIN / "bounty"), "create", *[a for d in digits for a in ("--digit", str(d))], "--payout",
            str(payout), "--budget", str(budget), "--json", *([] if vetted else ["--open"]),
            *(["--shape", shape] if shape else []), *(["--prizes", str(prizes)] if prizes else [])]
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bounty create failed: {done.stderr.strip()[-500:]}")
    return dict(json.loads(done.stdout))


def start_server(env: dict[str, str], log: Path, timeout: float = 90, cwd: Path | None = None) -> tuple[Process, str]:
    """`bounty serve` on a free loopback port; returns once /healthz answers."""
    port = free_port()
    server = Process([str(BIN / "bounty"), "serve", "--host", "127.0.0.1", "--port", str(port)], env, log, cwd)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.running():
            server.stop()
            raise RuntimeError(f"bounty serve exited with {server.popen.returncode}: {server.log_tail(1000)}")
        if healthy(url):
            return server, url
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"bounty serve did not answer within {timeout} s")
