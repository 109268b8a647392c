"""`bounty demo --json`: the whole loop on the embedded default, as a new user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess


def test_the_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    user_home = tmp_path / "user"  # a new user's: no ~/.digit-bounty yet
    user_home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUNTY_")} | {"HOME": str(user_home)}
    done = subprocess.run([sys.executable, "-m", "marketplace.cli", "demo", "--json", "--home", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "ERROR" not in done.stderr, done.stderr[-3000:]
    assert not (user_home / ".digit-bounty").exists()  # everything stayed in the demo's BOUNTY_HOME...
    assert list((tmp_path / "demo").glob("celerybeat-schedule*"))  # ...the workers' scheduler state too
    summary = json.loads(done.stdout)  # stdout is the JSON summary and nothing else
    assert summary["accepted"] >= 1 and summary["rejected"] >= 1
    assert summary["persisted"] == summary["accepted"]
    assert summary["model_versions"] >= 2 and len(summary["contract_txids"]) == 2
    assert summary["paid_sats"] == summary["accepted"] * summary["payout_sats"]
    assert "demo: waiting for retraining" in done.stderr  # progress is visible while it runs
