"""`bounty demo --json`: the whole loop on the embedded default, as a new user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "marketplace.cli", "demo", "--json", "--home", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)  # stdout is the JSON summary and nothing else
    assert summary["accepted"] >= 1 and summary["rejected"] >= 1
    assert summary["persisted"] == summary["accepted"]
    assert summary["model_versions"] >= 2 and len(summary["contract_txids"]) == 2
    assert summary["paid_sats"] == summary["accepted"] * summary["payout_sats"]
    assert "demo: waiting for retraining" in done.stderr  # progress is visible while it runs
