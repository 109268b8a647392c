"""docker-compose.yml's healthchecks run for real: the daemon, worker and beat started natively with their compose
commands (on this machine's Redis, SQLite and the dev chain instead of the containers' PostgreSQL and network),
each healthcheck command run as the container would run it, passing while its service works and failing once the
service is frozen (SIGSTOP: hung, though its process is still there). And the idle processes' memory, which the
compose file's limits are sized from."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.test_compose import DATA_DIR, PEAKS, command, healthcheck, interpolate, memory_limit
from tests.support.processes import BIN, Process, server_env, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.subprocess]

REDIS_URL = "redis://127.0.0.1:6379/15"  # a database of this machine's Redis no other test uses
SERVICES = ["daemon", "worker", "beat"]
MB = 2**20


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict[str, Process]]]:
    """The three services on their compose commands, /data moved to a temporary directory; and the environment
    a container gives its healthcheck (the image's commands on PATH, HOSTNAME its host name)."""
    root = tmp_path_factory.mktemp("healthchecks")
    home = root / "data"
    home.mkdir()
    env = server_env(home, BOUNTY_REDIS_URL=REDIS_URL, BOUNTY_LOG_LEVEL="INFO")
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "HOSTNAME": socket.gethostname()})
    started: dict[str, Process] = {}
    try:
        for service in SERVICES:
            argv = [arg.replace(DATA_DIR, str(home)) for arg in command(service)]
            started[service] = Process([str(BIN / argv[0]), *argv[1:]], env, root / f"{service}.log")
        yield env, started
    finally:
        for process in started.values():
            process.stop()


def run_check(service: str, env: dict[str, str], max_age: str | None = None) -> subprocess.CompletedProcess[str]:
    """The service's healthcheck as Docker runs it: CMD as a command, CMD-SHELL through `sh -c` (after compose
    turned `$$` into `$`). `max_age` replaces the daemon's --max-age, to see a stale heartbeat in seconds."""
    kind, *rest = healthcheck(service)
    argv = ["sh", "-c", interpolate(rest[0], {})] if kind == "CMD-SHELL" else rest
    if max_age is not None:
        argv[argv.index("--max-age") + 1] = max_age
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


def passes(service: str, env: dict[str, str]) -> Callable[[], bool]:
    return lambda: run_check(service, env).returncode == 0


def test_each_healthcheck_passes_while_its_service_works(stack: tuple[dict[str, str], dict[str, Process]]) -> None:
    env, started = stack
    for service in SERVICES:
        assert started[service].running(), started[service].log_tail()
        wait_for(f"{service}'s healthcheck to pass", passes(service, env), 90, 1)


@pytest.mark.parametrize("service", SERVICES)
def test_a_hung_service_fails_its_healthcheck_and_passes_again_when_it_resumes(
        stack: tuple[dict[str, str], dict[str, Process]], service: str) -> None:
    env, started = stack
    process = started[service]
    wait_for(f"{service}'s healthcheck to pass", passes(service, env), 90, 1)
    os.killpg(process.pid, signal.SIGSTOP)  # the whole group: a worker's pool children too
    try:
        if service == "daemon":
            time.sleep(3)
            hung = run_check(service, env, max_age="2")
            assert "the daemon's last completed step was" in hung.stderr
        else:
            hung = run_check(service, env)
            assert "No nodes replied" in hung.stdout + hung.stderr
        assert hung.returncode != 0
    finally:
        os.killpg(process.pid, signal.SIGCONT)
    wait_for(f"{service}'s healthcheck to pass again", passes(service, env), 90, 1)


def tree_rss(pid: int) -> int:
    """Resident memory of `pid` and all its descendants, in bytes."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


@pytest.mark.parametrize("service", SERVICES)
def test_idle_memory_is_what_the_limits_were_sized_from(stack: tuple[dict[str, str], dict[str, Process]],
                                                       service: str) -> None:
    env, started = stack
    wait_for(f"{service}'s healthcheck to pass", passes(service, env), 90, 1)
    rss = tree_rss(started[service].pid)
    idle = {"daemon": 125 * MB, "beat": 125 * MB, "worker": PEAKS["worker"] - 1600 * MB}[service]
    assert rss <= idle * 1.2, f"{service}: {rss / MB:.0f} MB idle; the compose limit assumed {idle / MB:.0f} MB"
    assert rss * 2 < memory_limit(service)
