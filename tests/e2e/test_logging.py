"""A real `bounty serve` with BOUNTY_LOG_FORMAT=json: every line it writes is a JSON object, and each request
has its access line with the id it was answered with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import server_env, start_server, wait_for

pytestmark = pytest.mark.subprocess


def test_bounty_serve_logs_json_with_request_ids(tmp_path: Path) -> None:
    env = server_env(tmp_path / "home", BOUNTY_LOG_FORMAT="json", BOUNTY_LOG_LEVEL="INFO")
    log = tmp_path / "serve.log"
    server, url = start_server(env, log)
    try:
        request = urllib.request.Request(f"{url}/bounties", headers={"X-Request-ID": "e2e-42"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["X-Request-ID"] == "e2e-42"
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            assert b"bounty_http_requests_total" in response.read()
        # the embedded watcher books a block a second (BOUNTY_BLOCK_INTERVAL=1)
        wait_for("a block in the log", lambda: "chain event: block" in log.read_text(), timeout=30)
    finally:
        server.stop()
    lines = log.read_text().splitlines()  # stdout and stderr, in one file
    banners = [line for line in lines if line.startswith("digit-bounty on http://")]
    assert len(banners) == 1  # the command's own output (stdout), not a log line
    logged = [line for line in lines if line not in banners]
    entries = [json.loads(line) for line in logged if line.strip()]  # fails on any log line not JSON
    access = [e for e in entries if e["logger"] == "marketplace.api.access_log"]
    [ours] = [e for e in access if e.get("request_id") == "e2e-42"]
    assert ours["message"].startswith("request e2e-42 GET /bounties 200 ") and ours["level"] == "INFO"
    assert any(e["message"].startswith("chain event: block height=") for e in entries)  # the embedded watcher's


def test_celery_processes_log_in_the_configured_format(tmp_path: Path) -> None:
    """`celery worker` and `celery beat` set up their logging through Celery's `setup_logging` signal, which
    `workers.app` answers with the same set-up as every other process."""
    script = ("import logging; from workers.app import app; app.log.setup(); "
              "logging.getLogger('workers.check').warning('worker says %s', 'hello')")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUNTY_")}
    env.update({"BOUNTY_HOME": str(tmp_path), "BOUNTY_LOG_FORMAT": "json", "BOUNTY_LOG_LEVEL": "INFO"})
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                          check=True)
    entries = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    expected = {"logger": "workers.check", "level": "WARNING", "message": "worker says hello"}
    assert expected.items() <= entries[-1].items()
