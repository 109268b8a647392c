"""The embedded `bounty serve` runs a real retraining on its in-process workers and still never holds TensorFlow:
the training step runs in a child process (workers.retraining.training)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from marketplace.schema import RetrainRun, RetrainStatus
from tests.support.processes import free_port

pytestmark = pytest.mark.subprocess  # a real `bounty serve`

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 420.0  # seconds for the service to start, schedule a run and finish it on the fast settings


def finished_run(database: Path) -> RetrainRun | None:
    if not database.exists():
        return None
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            return conn.execute(select(RetrainRun).where(RetrainRun.finished_at.is_not(None))  # type: ignore[return-value]
                                .order_by(RetrainRun.id).limit(1)).first()
    except Exception:  # the service is still creating its schema
        return None
    finally:
        engine.dispose()


def test_bounty_serve_retrains_without_loading_tensorflow(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUNTY_")} | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "BOUNTY_HOME": str(home),
        "BOUNTY_RETRAIN_FAST": "true",  # a seconds-long fine-tuning...
        "BOUNTY_RETRAIN_TOLERANCE": "1", "BOUNTY_RETRAIN_CLASS_TOLERANCE": "1",  # ...that need not be better
        "BOUNTY_RETRAIN_EVERY_SECONDS": "2",  # beat schedules a run at once
    }
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "marketplace.cli", "serve", "--port", str(free_port())],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + DEADLINE
        run = None
        while run is None and server.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
            run = finished_run(home / "bounty.sqlite")
        output = (tmp_path / "serve.log").read_text(errors="replace")[-3000:]
        assert run is not None, f"no retraining run finished (service exited: {server.poll()}):\n{output}"
        assert run.status == RetrainStatus.SUCCEEDED and run.new_model_id is not None, (run.status, run.error)
        assert server.poll() is None, output
        maps = Path(f"/proc/{server.pid}/maps").read_text()
        loaded = sorted({line.split()[-1] for line in maps.splitlines() if "tensorflow" in line.lower()})
        assert not loaded, f"the API process mapped TensorFlow after a retraining: {loaded[:5]}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
