"""docker-compose.yml, the Dockerfile and .dockerignore, kept correct without a Docker engine.

Each service's command is parsed by the real command-line tool it names (bounty's Typer app, Celery's click
group), every BOUNTY_* variable is checked against `Settings`, the shared environment is loaded into
`Settings` as a container would, and the files are searched for anything secret.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shlex
import tomllib
from fnmatch import fnmatch
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

COMPOSE_TEXT = COMPOSE_FILE.read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)  # resolves the x-app anchor and its `<<:` merges
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE_TEXT = DOCKERFILE.read_text()

STORES = {"postgres", "redis"}
APP_SERVICES = {"migrate", "api", "daemon", "worker", "beat"}
ONE_SHOT = {"migrate"}
DATA_DIR = "/data"  # BOUNTY_HOME inside the containers, the appdata volume's mount point

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}, ${NAME:+alt}, $NAME, $$
VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
                      r"|(?P<bare>[A-Za-z_]\w*))")
# A whole value that is one substitution with no default baked in: ${X}, ${X:?msg}, ${X?msg}, ${X:-}, ${X-}
PURE_SUBSTITUTION = re.compile(r"\$\{[A-Za-z_]\w*(?::?\?[^}]*|:?-)?\}")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE|WIF|(^|_)KEY$", re.IGNORECASE)
WIF = re.compile(r"(?<![1-9A-HJ-NP-Za-km-z])[59KLc][1-9A-HJ-NP-Za-km-z]{50,51}(?![1-9A-HJ-NP-Za-km-z])")
EXTENDED_KEY = re.compile(r"[xt]prv[1-9A-HJ-NP-Za-km-z]{100,}")
HEX_KEY = re.compile(r"(?<![0-9a-fA-F])(?<!sha256:)[0-9a-fA-F]{64}(?![0-9a-fA-F])")  # image digests are fine
RESTART = re.compile(r"no|always|unless-stopped|on-failure(:\d+)?")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def interpolate(text: str, env: dict[str, str]) -> str:
    """`text` with compose's variable substitution done against `env`."""

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg, value = match["op"], match["arg"] or "", env.get(name)
        present = value is not None and (value != "" or not (op or "").startswith(":"))
        if op in ("-", ":-"):
            return value if present else arg  # type: ignore[return-value]
        if op in ("?", ":?"):
            if not present:
                raise LookupError(f"{name}: {arg}")
            return value  # type: ignore[return-value]
        if op in ("+", ":+"):
            return arg if present else ""
        return value or ""

    return VARIABLE.sub(one, text)


def command(service: str) -> list[str]:
    cmd = SERVICES[service]["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(k): (None if v is None else str(v)) for k, v in env.items()}


def is_group(cmd: Any) -> bool:
    # duck-typed: Celery's group is click's, Typer's is built on the copy of click that Typer vendors
    return hasattr(cmd, "commands") and hasattr(cmd, "resolve_command")


def resolve(root: Any, prog: str, argv: list[str], obj: Any = None) -> tuple[list[tuple[Any, list[str]]], Any]:
    """Walk `argv` down `root`'s click command tree the way click does. Returns each command on the way
    with the tokens it parsed, and the leaf's context: making it parses and converts every value, so an
    unknown option, a bad value or a missing argument raises (nothing is invoked). `obj` stands in for
    what a group's callback would have put in the context."""
    path: list[tuple[Any, list[str]]] = []
    cmd, name, args, ctx = root, prog, list(argv), None
    while is_group(cmd):
        ctx = cmd.make_context(name, list(args), parent=ctx, obj=obj)
        at = len(args) - len(ctx.args) - 1  # a group stops at its subcommand; ctx.args is what follows
        assert at >= 0, f"{prog} {' '.join(argv)}: no subcommand of {name!r}"
        path.append((cmd, args[:at]))
        name, sub, args = cmd.resolve_command(ctx, args[at:])
        assert sub is not None and name is not None
        cmd = sub
    path.append((cmd, args))
    return path, cmd.make_context(name, list(args), parent=ctx)


def assert_options_exist(path: list[tuple[Any, list[str]]], line: str) -> None:
    for cmd, tokens in path:
        known = {opt for param in cmd.params for opt in (*param.opts, *param.secondary_opts)}
        for token in tokens:
            if token.startswith("-") and token not in ("-", "--"):
                option = token.split("=", 1)[0]
                assert option in known, f"`{line}`: {cmd.name} has no option {option} (it has {sorted(known)})"


def resolve_celery(argv: list[str]) -> tuple[list[tuple[Any, list[str]]], Any]:
    """`celery ...` parsed by Celery's own command group. Some of its options default from the app's
    configuration, which the group's callback would load: a bare app with the default configuration
    stands in (the real app is checked by test_celery_app_is_importable)."""
    from celery import Celery
    from celery.bin.celery import celery

    assert argv[0] == "celery"
    return resolve(celery, "celery", argv[1:], obj=SimpleNamespace(app=Celery(set_as_current=False)))


def celery_apps() -> set[str]:
    apps = set()
    for service in APP_SERVICES:
        argv = command(service)
        if argv[0] == "celery":
            _, ctx = resolve_celery(argv)
            assert ctx.parent is not None
            apps.add(ctx.parent.params["app"])
    return apps


# -- services and commands ------------------------------------------------------------------------------


def test_every_service_is_defined() -> None:
    assert set(SERVICES) >= STORES | APP_SERVICES, f"missing: {(STORES | APP_SERVICES) - set(SERVICES)}"
    assert SERVICES["postgres"]["image"].startswith("postgres:16")
    assert SERVICES["redis"]["image"].startswith("redis:7")
    redis = command("redis")
    assert "--appendonly" in redis and redis[redis.index("--appendonly") + 1] == "yes"


def test_app_services_share_one_image_configuration_and_data_volume() -> None:
    shared = COMPOSE["x-app"]
    for name in APP_SERVICES:
        service = SERVICES[name]
        build = service.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        assert context in (".", "./"), f"{name} must build from the repository root"
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (ROOT / dockerfile).is_file()
        assert service.get("image") == shared.get("image")
        assert environment(service) == environment(shared), f"{name} must use the shared x-app environment"
        assert f"appdata:{DATA_DIR}" in service.get("volumes", []), f"{name} must mount appdata at {DATA_DIR}"
        assert "command" in service, f"{name} has no command"
    assert environment(shared)["BOUNTY_HOME"] == DATA_DIR


@pytest.mark.parametrize("service", sorted(s for s in APP_SERVICES if command(s)[0] == "bounty"))
def test_bounty_commands_parse(service: str) -> None:
    from marketplace.cli import app

    argv = command(service)
    path, ctx = resolve(typer.main.get_command(app), "bounty", argv[1:])
    assert_options_exist(path, " ".join(argv))
    assert ctx.command.callback is not None
    if service == "api":
        assert ctx.params["host"] == "0.0.0.0", "the API must listen on every interface of its container"


@pytest.mark.parametrize("service", sorted(s for s in APP_SERVICES if command(s)[0] == "celery"))
def test_celery_commands_parse(service: str) -> None:
    argv = command(service)
    path, ctx = resolve_celery(argv)
    assert_options_exist(path, " ".join(argv))
    assert ctx.parent is not None and ctx.parent.params["app"], "celery needs -A"
    if ctx.command.name == "beat":  # the schedule is state: keep it in the data volume
        assert str(ctx.params["schedule"]).startswith(DATA_DIR + "/")


def test_worker_and_beat_are_celery() -> None:
    assert command("worker")[:4] == ["celery", "-A", "workers.app", "worker"]
    assert command("beat")[:4] == ["celery", "-A", "workers.app", "beat"]
    assert celery_apps() == {"workers.app"}


def test_celery_app_is_importable() -> None:
    """`-A workers.app` names a module whose `app` (or `celery`) attribute is the Celery app: resolved here
    exactly as the celery command resolves it."""
    from celery import Celery
    from celery.app.utils import find_app

    from marketplace.settings import get_settings

    for target in sorted(celery_apps()):
        module = target.partition(":")[0]
        assert importlib.util.find_spec(module) is not None, f"celery -A {target}: no module {module}"
        try:
            found = find_app(target)
        finally:
            get_settings.cache_clear()  # the app module reads the settings on import: leave no cached copy
        assert isinstance(found, Celery), f"-A {target} resolves to {type(found).__name__}, not a Celery app"


def test_the_commands_are_installed() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("bounty") == "marketplace.cli:main"
    assert "celery" in scripts
    first_words = {command(s)[0] for s in APP_SERVICES}
    assert first_words <= {"bounty", "celery"}, f"unchecked commands: {first_words - {'bounty', 'celery'}}"


# -- configuration ----------------------------------------------------------------------------------------


def bounty_names() -> set[str]:
    names = {k for s in [*SERVICES.values(), COMPOSE["x-app"]] for k in environment(s)
             if k.upper().startswith("BOUNTY_")}
    names |= {m["name"] or m["bare"] for m in VARIABLE.finditer(COMPOSE_TEXT)
              if (m["name"] or m["bare"] or "").upper().startswith("BOUNTY_")}
    names |= {key for line in dockerfile_lines() if line[0] in ("ENV", "ARG")
              for key in env_pairs(line[1]) if key.upper().startswith("BOUNTY_")}
    return names


def test_every_bounty_variable_is_a_setting() -> None:
    import marketplace.cli
    from marketplace.settings import Settings

    config = Settings.model_config
    assert config.get("env_prefix") == "BOUNTY_" and not config.get("case_sensitive", False)
    read_by_the_cli = {"BOUNTY_LOG_LEVEL"} if "BOUNTY_LOG_LEVEL" in inspect.getsource(marketplace.cli) else set()
    names = bounty_names()
    assert {"BOUNTY_DATABASE_URL", "BOUNTY_REDIS_URL", "BOUNTY_CHAIN", "BOUNTY_HOME"} <= names
    unknown = {n for n in names if n.upper() not in read_by_the_cli
               and n.lower().removeprefix("bounty_") not in Settings.model_fields}
    assert not unknown, f"not fields of marketplace.settings.Settings: {sorted(unknown)}"


def test_compose_variables_are_well_formed() -> None:
    uncommented = "\n".join(line.split(" #")[0] for line in COMPOSE_TEXT.splitlines()
                            if not line.lstrip().startswith("#"))
    dollars = uncommented.count("$")
    consumed = sum(len(m[0]) if m["escaped"] else 1 for m in VARIABLE.finditer(uncommented))
    assert dollars == consumed, "a `$` that is neither $$ nor a ${VARIABLE} substitution"


def test_shared_environment_loads_into_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The x-app environment as a container receives it (required variables given, the rest unset) is
    valid `Settings`, with the production defaults."""
    from marketplace.settings import Settings

    given = {"POSTGRES_PASSWORD": "pw", "BOUNTY_ARC_URL": "https://arc.example", "OPERATOR_KEY_PATH": "/k"}
    for name in list(os.environ):
        if name.upper().startswith("BOUNTY_"):
            monkeypatch.delenv(name)
    for name, value in environment(COMPOSE["x-app"]).items():
        if value is not None:
            monkeypatch.setenv(name, interpolate(value, given))
    with pytest.raises(LookupError, match="POSTGRES_PASSWORD"):
        interpolate(environment(COMPOSE["x-app"])["BOUNTY_DATABASE_URL"] or "", {})

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.home == Path(DATA_DIR)
    assert settings.chain == "network" and settings.arc_url == "https://arc.example"
    assert not settings.arc_api_key or not settings.arc_api_key.get_secret_value()
    db, redis = urlsplit(settings.database), urlsplit(settings.redis_url or "")
    assert settings.database.startswith("postgresql+psycopg://") and db.password == "pw"
    assert (db.hostname, db.port, db.path) == ("postgres", 5432, "/bounty") and db.username == "bounty"
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)
    postgres = environment(SERVICES["postgres"])
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == (db.username, "bounty")
    assert postgres["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    # the key file is where compose mounts a declared secret
    assert settings.operator_key_file is not None and settings.operator_key_file.parent == Path("/run/secrets")
    assert settings.operator_key_file.name in COMPOSE["secrets"]


def container_environment(given: dict[str, str]) -> dict[str, str]:
    """The BOUNTY_* variables an app container receives when the shell or .env sets `given`."""
    return {name: interpolate(value, given) for name, value in environment(COMPOSE["x-app"]).items()
            if value is not None}


def test_arc_url_is_required_by_the_network_chain_only(tmp_path: Path) -> None:
    """Compose lets BOUNTY_ARC_URL be unset (it cannot say "required when BOUNTY_CHAIN=network"); the service
    checks it instead: the dev chain starts without it, the network chain refuses to, with one sentence."""
    import subprocess
    import sys

    from pydantic import ValidationError

    from marketplace.settings import Settings

    given = {"POSTGRES_PASSWORD": "pw", "OPERATOR_KEY_PATH": "/k", "ATTESTOR_KEY_PATH": "/a"}
    env = container_environment(given)  # no LookupError: nothing demands BOUNTY_ARC_URL
    assert env["BOUNTY_ARC_URL"] == "" and env["BOUNTY_CHAIN"] == "network"

    def settings(extra: dict[str, str]) -> Settings:
        values = {**env, **extra}
        fields: dict[str, Any] = {k.lower().removeprefix("bounty_"): v for k, v in values.items()}
        return Settings(_env_file=None, **fields)  # type: ignore[call-arg]

    local = container_environment({**given, "BOUNTY_CHAIN": "local"})
    assert settings(local).chain == "local" and settings(local).arc_url is None
    with pytest.raises(ValidationError, match="BOUNTY_CHAIN=network needs BOUNTY_ARC_URL"):
        settings({})
    assert settings({"BOUNTY_ARC_URL": "https://arc.example"}).arc_url == "https://arc.example"

    # the real command in the container's environment: one sentence, exit code 1, no traceback
    process_env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BOUNTY_")}
    process_env.update({**env, "BOUNTY_HOME": str(tmp_path)})
    done = subprocess.run([sys.executable, "-m", "marketplace.cli", *command("daemon")[1:]], env=process_env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: invalid settings: BOUNTY_CHAIN=network needs BOUNTY_ARC_URL (the ARC endpoint that broadcasts)"]


# -- health, order, restarts, volumes ---------------------------------------------------------------------


def healthcheck(service: str) -> list[str]:
    check = SERVICES[service].get("healthcheck") or {}
    test = check.get("test")
    assert test and not check.get("disable"), f"{service} needs a healthcheck"
    return shlex.split(test) if isinstance(test, str) else [str(t) for t in test]


def healthcheck_argv(service: str) -> list[str]:
    """The command a healthcheck runs, as the container's shell would split it (`$$` is compose's `$`)."""
    kind, *rest = healthcheck(service)
    assert kind in ("CMD", "CMD-SHELL"), f"{service}: healthcheck test {kind}"
    return shlex.split(interpolate(rest[0], {})) if kind == "CMD-SHELL" else rest


def option(argv: list[str], *names: str) -> str | None:
    """The value of the last of `names` in `argv` (`--name value` or `--name=value`)."""
    found = None
    for i, word in enumerate(argv):
        name, eq, value = word.partition("=")
        if name in names:
            found = value if eq else argv[i + 1]
    return found


@pytest.mark.parametrize("service", ["daemon", "worker", "beat"])
def test_every_long_running_service_has_a_healthcheck_its_image_can_run(service: str) -> None:
    """The daemon's check is a `bounty` command; the worker's and beat's ping their own Celery node (the one
    their command names, with the container's host name for %h), which beat answers only with remote control
    on. Each parses with the real CLI; tests/e2e/test_healthchecks.py runs them against live processes."""
    argv = healthcheck_argv(service)
    assert argv[0] in ("bounty", "celery"), f"{service}: {argv[0]} is not in the image"
    if argv[0] == "bounty":
        from marketplace.cli import app

        path, ctx = resolve(typer.main.get_command(app), "bounty", argv[1:])
        assert_options_exist(path, " ".join(argv))
        assert [cmd.name for cmd, _ in path][1:] == ["health", "daemon"]
        return
    path, ctx = resolve_celery(argv)
    assert_options_exist(path, " ".join(argv))
    assert ctx.parent is not None and ctx.parent.params["app"] == "workers.app"
    assert ctx.command.name == "inspect" and ctx.params["command"] == "ping"
    node = option(command(service), "-n", "--hostname")
    assert node and node.endswith("@%h"), f"{service}: name its node after the container (NAME@%h)"
    assert ctx.params["destination"] == [node.replace("%h", "$HOSTNAME")], "the check must ping this container's node"
    if service == "beat":
        assert "--enable-remote-control" in command(service), "beat answers pings only with remote control on"


def test_stores_and_api_have_healthchecks() -> None:
    assert "pg_isready" in " ".join(healthcheck("postgres"))
    assert healthcheck("redis")[-2:] == ["redis-cli", "ping"]
    api = healthcheck("api")
    assert api[:3] == ["CMD", "python", "-c"], "the slim image has no curl: the API check is python -c"
    assert "urllib" in api[3]
    url = urlsplit(re.findall(r"https?://[^'\"\s]+", api[3])[0])
    from marketplace.cli import app

    _, ctx = resolve(typer.main.get_command(app), "bounty", command("api")[1:])
    assert url.port == ctx.params["port"] and url.path == "/healthz"
    published = [str(p).split("/")[0].rsplit(":", 1)[-1] for p in SERVICES["api"].get("ports", [])]
    assert str(ctx.params["port"]) in published, "the API port must be published"


def test_api_healthcheck_path_answers(tmp_path: Path) -> None:
    """The path the API's healthcheck fetches answers 200 on a working service (embedded mode here)."""
    from fastapi.testclient import TestClient

    from marketplace.api import create_app
    from marketplace.runtime import open_runtime
    from marketplace.settings import Settings

    path = urlsplit(re.findall(r"https?://[^'\"\s]+", healthcheck("api")[3])[0]).path
    rt = open_runtime(Settings(home=tmp_path, _env_file=None))  # type: ignore[call-arg]
    try:
        assert TestClient(create_app(rt, background=False)).get(path).status_code == 200
    finally:
        rt.close()


UNITS = {"b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30}
MB = 2**20
# Measured peaks (README, Production): the API serving 130-300 MB; the daemon's watcher about 115 MB; beat about
# 125 MB; a worker's main process and two pool children 325 MB idle, and a retraining's training child up to
# 1.6 GB beside them; building the MNIST novelty index (once, in the API or beside the daemon for the first vetted
# `bounty create`) a child process of 1.4 GB. tests/e2e/test_healthchecks.py measures the idle processes.
INDEX_BUILD = 1430 * MB
PEAKS = {"migrate": 150 * MB, "api": 300 * MB + INDEX_BUILD, "daemon": 125 * MB + 220 * MB + INDEX_BUILD,
         "beat": 125 * MB, "worker": 325 * MB + 1600 * MB}
HEADROOM = 1.15  # a limit leaves at least this much over the peak ...
ROOMY = 8.0  # ... and is no blank cheque


def memory_limit(service: str) -> int:
    limit = (((SERVICES[service].get("deploy") or {}).get("resources") or {}).get("limits") or {}).get("memory")
    assert limit, f"{service} has no memory limit (deploy.resources.limits.memory)"
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?b?)", str(limit).lower())
    assert found, f"{service}: memory limit {limit!r} is not a compose size"
    return int(float(found[1]) * UNITS[found[2] or "b"])


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_memory_limits_fit_the_measured_peaks(service: str) -> None:
    limit = memory_limit(service)
    assert limit >= PEAKS[service] * HEADROOM, f"{service}: {limit / MB:.0f} MB leaves too little over its peak"
    assert limit <= PEAKS[service] * ROOMY, f"{service}: {limit / MB:.0f} MB is far beyond its peak"


def test_depends_on_conditions() -> None:
    for name, service in SERVICES.items():
        deps = service.get("depends_on") or {}
        deps = {d: {"condition": "service_started"} for d in deps} if isinstance(deps, list) else deps
        for dep, spec in deps.items():
            assert dep in SERVICES, f"{name} depends on an unknown service {dep}"
            condition = spec.get("condition", "service_started")
            assert condition in CONDITIONS, f"{name} -> {dep}: unknown condition {condition}"
            if condition == "service_healthy":
                healthcheck(dep)
            if condition == "service_completed_successfully":
                assert dep in ONE_SHOT and SERVICES[dep].get("restart") == "no"
    conditions = {n: {d: s["condition"] for d, s in (SERVICES[n].get("depends_on") or {}).items()}
                  for n in APP_SERVICES}
    assert conditions["migrate"] == {"postgres": "service_healthy"}
    for name in APP_SERVICES - ONE_SHOT:
        assert conditions[name] == {"postgres": "service_healthy", "redis": "service_healthy",
                                    "migrate": "service_completed_successfully"}, name

    def visit(name: str, stack: tuple[str, ...]) -> None:
        assert name not in stack, f"dependency cycle: {' -> '.join((*stack, name))}"
        for dep in SERVICES[name].get("depends_on") or {}:
            visit(dep, (*stack, name))

    for name in SERVICES:  # no cycles
        visit(name, ())


def test_restart_policies() -> None:
    for name, service in SERVICES.items():
        policy = service.get("restart")
        assert isinstance(policy, str) and RESTART.fullmatch(policy), f"{name}: restart {policy!r} (quote \"no\")"
        assert (policy == "no") == (name in ONE_SHOT), f"{name}: restart {policy}"


def test_named_volumes() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    assert declared >= {"pgdata", "redisdata", "appdata"}
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} uses an undeclared volume {source}"
    assert "pgdata:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    assert "redisdata:/data" in SERVICES["redis"]["volumes"]


# -- secrets ------------------------------------------------------------------------------------------------


def scalars(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*scalars(k), *scalars(v))]
    if isinstance(node, list):
        return [s for v in node for s in scalars(v)]
    return [] if node is None else [str(node)]


@pytest.mark.parametrize("text", [COMPOSE_TEXT, DOCKERFILE_TEXT], ids=["compose", "dockerfile"])
def test_no_key_material_in_the_files(text: str) -> None:
    for pattern in (WIF, EXTENDED_KEY, HEX_KEY):
        found = pattern.search(text)
        assert found is None, f"something like a private key: {found[0][:6]}..."  # never print it whole


def test_secrets_are_only_substitutions() -> None:
    from marketplace.settings import Settings

    wif_variable = Settings.model_fields["operator_wif_env"].default
    for name, service in [*SERVICES.items(), ("x-app", COMPOSE["x-app"])]:
        env = environment(service)
        assert wif_variable not in env, f"{name}: the operator key goes in a secret file, not {wif_variable}"
        for key, value in env.items():
            if SECRET_NAME.search(key):
                assert value is None or PURE_SUBSTITUTION.fullmatch(value), \
                    f"{name}: {key} must be a ${{VARIABLE}} substitution without a default"
            for url in re.findall(r"\w[\w+.-]*://\S+", value or ""):
                password = urlsplit(url).password
                assert password is None or PURE_SUBSTITUTION.fullmatch(password), \
                    f"{name}: {key} has a password that is not a ${{VARIABLE}} substitution"
    for text in scalars(COMPOSE):
        for url in re.findall(r"\w[\w+.-]*://\S+", text):
            password = urlsplit(url).password
            assert password is None or PURE_SUBSTITUTION.fullmatch(password)
    declared = COMPOSE.get("secrets") or {}
    for secret, spec in declared.items():
        assert set(spec) <= {"file", "environment", "name"}, f"secret {secret}: only a file or a variable"
        if "file" in spec:
            assert PURE_SUBSTITUTION.fullmatch(spec["file"]), f"secret {secret}: its file path comes from a variable"
    for name, service in SERVICES.items():
        for ref in service.get("secrets", []):
            source = ref if isinstance(ref, str) else ref["source"]
            assert source in declared, f"{name} uses an undeclared secret {source}"
    uid = re.search(r"APP_UID=(\d+)", DOCKERFILE_TEXT)
    assert uid and uid[1] in COMPOSE_TEXT, "the compose file tells which uid must own the key file"


# -- Dockerfile and .dockerignore -----------------------------------------------------------------------------


def dockerfile_lines() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comments dropped."""
    lines, pending = [], ""
    for raw in DOCKERFILE_TEXT.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        lines.append((keyword.upper(), rest.strip()))
        pending = ""
    return lines


def env_pairs(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if len(words) == 2 and "=" not in words[0]:  # the old `ENV KEY value` form
        return {words[0]: words[1]}
    return dict(w.split("=", 1) if "=" in w else (w, "") for w in words)


def test_dockerfile_installs_the_project_as_a_non_root_user() -> None:
    lines = dockerfile_lines()
    assert lines[0][0] == "FROM" and lines[0][1].split("@")[0] == "python:3.11-slim"
    runs = [args for keyword, args in lines if keyword == "RUN"]
    installs = [seg for run in runs for seg in re.split(r"&&|;", run)
                if re.search(r"\bpip install\b", seg) and "." in shlex.split(seg)]
    assert installs, "the Dockerfile must `pip install .`"
    users = [args for keyword, args in lines if keyword == "USER"]
    assert users, "the Dockerfile must switch to an unprivileged USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), "the image must not run as root"
    assert any(re.search(rf"\b(useradd|adduser)\b.*\b{re.escape(user)}\b", run) for run in runs), \
        f"user {user} is never created"
    last_user = max(i for i, (keyword, _) in enumerate(lines) if keyword == "USER")
    assert all(keyword != "RUN" for keyword, _ in lines[last_user:]), "nothing may run as root after USER"
    env = {k: v for keyword, args in lines if keyword == "ENV" for k, v in env_pairs(args).items()}
    assert env.get("BOUNTY_HOME") == DATA_DIR
    assert any(DATA_DIR in run and user in run for run in runs), f"{DATA_DIR} must belong to {user}"
    for keyword, args in lines:
        if keyword in ("ENV", "ARG"):
            secret = [k for k in env_pairs(args) if SECRET_NAME.search(k)]
            assert not secret, f"{keyword} {secret}: no secrets in the image"
        if keyword in ("COPY", "ADD"):
            assert not re.search(r"(^|\s|/)\.env\b|\.(key|wif|pem)\b", args), f"{keyword} {args}: a secret file"


def test_dockerfile_copies_what_pip_install_needs() -> None:
    import marketplace.migrate

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {src.rstrip("/") for keyword, args in dockerfile_lines() if keyword in ("COPY", "ADD")
              and not args.startswith("--from") for src in shlex.split(args)[:-1]}
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    roots = {pattern.rstrip("*").rstrip(".") for pattern in include}
    needed = {"pyproject.toml", project["project"]["readme"], *roots}
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"
    # migrate.py looks for the scripts next to the installed marketplace package
    beside_the_package = Path(marketplace.migrate.__file__).resolve().parent.parent / "migrations"
    assert beside_the_package == marketplace.migrate.MIGRATIONS
    if not any(fnmatch("migrations", pattern) for pattern in include):  # not packaged: the Dockerfile places it
        assert "migrations" in copied
        assert any(keyword == "RUN" and re.search(r"cp -r migrations .*purelib", args)
                   for keyword, args in dockerfile_lines()), "migrations/ must be copied next to the installed code"


def test_dockerignore_keeps_secrets_out_and_what_is_needed_in() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".env", ".git", ".venv"} <= patterns
    copied = {src.rstrip("/") for keyword, args in dockerfile_lines() if keyword == "COPY"
              for src in shlex.split(args)[:-1]}
    excluded = {src for src in copied for p in patterns if not p.startswith("!") and fnmatch(src, p)}
    assert not excluded, f".dockerignore drops what the Dockerfile copies: {sorted(excluded)}"
