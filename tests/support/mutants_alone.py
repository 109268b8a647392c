"""Run mutants one by one, each in a fresh pytest, the way mutmut runs one, and keep the verdicts where mutmut
keeps its own (mutants/<module>.py.meta), so `mutation_report.py` counts them with mutmut's.

Why: mutmut 3.8.1 forks each mutant from one process and, for a function nearly every test calls
(`create_bounty`, `_gate`: 120-190 tests), pays a minute or more per mutant even when the first test kills it.
A fresh pytest costs about 15 s a mutant instead. Each mutant meets the same tests mutmut would give it: those
that call its function (`mutants/mutmut-stats.json`), fastest first, stopping at the first failure.

Run from the project's root after `make mutants` has written `mutants/` (`make mutants-alone`):
    python tests/support/mutants_alone.py [--again] [PATTERN ...]
PATTERN is a mutant name or an fnmatch pattern ("marketplace.submissions.x__gate__mutmut_*"), run in the order
given; the default is every mutant not checked yet. `--again` reruns the ones already checked too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatch
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path("mutants")
TIMEOUT = 36  # mutmut's own exit code for a mutant stopped by its deadline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("patterns", nargs="*", default=["*"])
    parser.add_argument("--again", action="store_true", help="rerun mutants already checked")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if not (ROOT / "mutmut-stats.json").exists():
        print("no mutants/mutmut-stats.json: run `make mutants` first (it writes mutants/ and maps the tests)")
        return 2
    stats = json.loads((ROOT / "mutmut-stats.json").read_text())
    pytest_args = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]["pytest_add_cli_args"]
    todo = [(meta, name) for meta in sorted(ROOT.rglob("*.py.meta"))
            for name, code in json.loads(meta.read_text())["exit_code_by_key"].items()
            if (args.again or code is None) and any(fnmatch(name, p) for p in args.patterns)]
    todo.sort(key=lambda job: next(i for i, p in enumerate(args.patterns) if fnmatch(job[1], p)))  # as asked
    print(f"{len(todo)} mutants to run, {args.workers} at a time", flush=True)
    lock = threading.Lock()

    def run(job: tuple[Path, str]) -> None:
        meta, name = job
        code = _verdict(name, stats, pytest_args)
        with lock:  # written as each one ends: an interrupted run keeps what it measured
            data = json.loads(meta.read_text())
            data["exit_code_by_key"][name] = code
            meta.write_text(json.dumps(data, indent=4))
            print(f"{status_by_exit_code[code]}\t{name}", flush=True)

    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(run, todo))
    return 0


def _verdict(name: str, stats: dict, pytest_args: list[str]) -> int:
    """pytest's exit code for the mutant (1 killed, 0 survived), or mutmut's for no tests / a timeout."""
    duration = stats["duration_by_test"]
    tests = sorted(stats["tests_by_mangled_function_name"].get(name.rsplit("__mutmut_", 1)[0], []),
                   key=lambda test: duration.get(test, 0.0))
    if not tests:
        return 33  # no test calls the function
    deadline = 120 + 5 * sum(duration.get(test, 0.0) for test in tests)  # generous: a slow machine is no kill
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:random-order", *pytest_args, *tests]
    try:
        return subprocess.run(command, cwd=ROOT, env={**os.environ, "MUTANT_UNDER_TEST": name},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=deadline).returncode
    except subprocess.TimeoutExpired:
        return TIMEOUT


if __name__ == "__main__":
    sys.exit(main())
