"""`bounty retrain [--wait] [--json]`: one retraining cycle now (train, gate, redeploy).

Where it runs: on the workers when Redis is configured and a worker answers; otherwise in this process. The
embedded workers live inside `bounty serve` on an in-memory broker that nothing outside it can reach, so there
the command always runs the cycle itself (the run lease keeps it from overlapping one of theirs). TensorFlow
stays out of this process either way: the training step runs in a child process of its own.

Without --wait: on the workers it returns once the task is queued; in its own process it starts the cycle in
a detached background process whose output, ending with the report, goes to a log file it names.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from marketplace.cli._output import JsonOption

if TYPE_CHECKING:
    from marketplace.runtime import Runtime
    from marketplace.settings import Settings
    from marketplace.views import RetrainReport

PROCESS = "process"
WaitOption = Annotated[bool, typer.Option("--wait", help="Wait for the run and print it.")]
TimeoutOption = Annotated[float, typer.Option(min=1, help="With --wait on the workers: stop waiting after this many "
                                                           "seconds (the run goes on).")]


def retrain(wait: WaitOption = False, as_json: JsonOption = False, timeout: TimeoutOption = 7200.0) -> None:
    """Retrain the classifier now: one cycle (train, judge against the deployed model, redeploy if it passes)."""
    from marketplace.cli._retrain_workers import workers_answer
    from marketplace.runtime import open_runtime

    rt = open_runtime()
    try:
        if rt.settings.redis_url is not None:
            if workers_answer(rt.settings):
                report = _on_workers(rt, wait, as_json, timeout)
                if report is not None:
                    _finish(report, as_json)
                return
            typer.echo("no worker answers on Redis: retraining in this process", err=True)
        if wait:
            _finish(_here(rt), as_json)
        else:
            _detach(rt.settings, as_json)
    finally:
        rt.close()


def _on_workers(rt: Runtime, wait: bool, as_json: bool, timeout: float) -> RetrainReport | None:
    from marketplace.cli._retrain_workers import WORKERS, follow, send_retrain
    from marketplace.retrain_report import latest_run_id

    after = latest_run_id(rt)  # before sending: the run the task records gets a higher id
    task_id = send_retrain()
    if wait:
        return follow(rt, task_id, after, timeout)
    _say({"status": "queued", "where": WORKERS, "task_id": task_id}, as_json,
         f"retraining queued for the workers (task {task_id}); the worker's log shows its run")
    return None


def _here(rt: Runtime) -> RetrainReport:
    from marketplace.retrain_report import report_without_run, run_report
    from marketplace.schema import RetrainTrigger
    from workers.retraining import retrain as retrain_cycle

    for handler in logging.getLogger().handlers:  # the report says what broke, in one sentence
        handler.addFilter(_without_traceback)
    result = retrain_cycle(rt, RetrainTrigger.MANUAL)
    if result.run_id is None:  # skipped (the lease was held), or failed before its run could be recorded
        return report_without_run(result.status, result.reason or result.error, PROCESS)
    return run_report(rt, result.run_id, PROCESS)


def _without_traceback(record: logging.LogRecord) -> bool:
    """Keep a log line but drop its traceback: a command prints sentences, never a traceback."""
    record.exc_info, record.exc_text = None, None
    return True


def _detach(settings: Settings, as_json: bool) -> None:
    """Run `bounty retrain --wait --json` in a background process of its own session, its output in a log."""
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"retrain-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.log"
    with open(log, "wb") as out:
        child = subprocess.Popen([sys.executable, "-m", "marketplace.cli", "retrain", "--wait", "--json"],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)  # outlives this command and its terminal
    _say({"status": "started", "where": PROCESS, "pid": child.pid, "log": str(log)}, as_json,
         f"retraining in a background process (pid {child.pid}); its report will end {log}")


def _finish(report: RetrainReport, as_json: bool) -> None:
    """Print the report; a failed run also exits 1 with one sentence (the other outcomes are normal ones)."""
    if as_json:
        typer.echo(json.dumps(report.model_dump(), indent=2))
    else:
        _print_lines(report)
    if report.status == "failed":
        run = f"retraining run {report.run_id}" if report.run_id is not None else "retraining"
        typer.echo(f"error: {run} failed: {report.error or 'no reason was recorded'}", err=True)
        raise typer.Exit(1)


def _print_lines(report: RetrainReport) -> None:
    m = report.metrics
    run = f" run {report.run_id}" if report.run_id is not None else ""
    outcome = f"deployed model version {report.version}" if report.status == "deployed" else report.status
    base = f" (the champion: version {report.base_version})" if report.base_version is not None else ""
    where = "on the workers" if report.where == "workers" else "in this process"
    typer.echo(f"retraining{run} {where}: {outcome}{base}")
    if m.get("mnist_test_accuracy") is not None:
        typer.echo(f"  MNIST test accuracy      {_pct(m['mnist_test_accuracy'])} "
                   f"(champion {_pct(m.get('mnist_test_accuracy_before'))})")
    if m.get("crowd_holdout_accuracy_after") is not None:
        typer.echo(f"  crowd held-out accuracy  {_pct(m.get('crowd_holdout_accuracy_before'))} -> "
                   f"{_pct(m['crowd_holdout_accuracy_after'])} on {m.get('crowd_holdout_images')} images")
    if report.images:
        typer.echo("  images                   " + ", ".join(f"{k} {v}" for k, v in report.images.items()
                                                           if not isinstance(v, dict | list)))
    for move in report.redeployed:
        typer.echo(f"  redeployed               bounty {move.bounty_id} in {move.txid}")
    for reason in report.reasons:
        typer.echo(f"  reason                   {reason}")
    if report.error:
        typer.echo(f"  error                    {report.error}")


def _pct(value: object) -> str:
    return f"{float(value):.2%}" if isinstance(value, int | float) else "-"


def _say(message: dict[str, object], as_json: bool, line: str) -> None:
    typer.echo(json.dumps(message, indent=2) if as_json else line)


__all__ = ["retrain"]
