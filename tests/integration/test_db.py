"""The service database on both backends it runs on: SQLite (embedded) and the real PostgreSQL.

PostgreSQL is the one on 127.0.0.1:5432 (CI starts it): each test session creates its own database and
drops it at the end. If the server cannot be reached these tests fail; they never skip.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import CheckConstraint, Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from marketplace import db, migrate
from marketplace.cli import app
from marketplace.errors import ConfigError, DatabaseError, DatabaseUnavailable
from marketplace.schema import (
    Base,
    Bounty,
    BountyStatus,
    Deployment,
    DeploymentStatus,
    ModelVersion,
    Network,
    RejectReason,
    Submission,
    SubmissionSource,
    SubmissionStatus,
    WatcherState,
)
from marketplace.settings import Settings, get_settings
from tests.support.databases import reset_schema

PIXELS = bytes(range(256)) * 3 + bytes(range(16))  # every byte value, 784 in all
TXID = "ab" * 32
APP_TABLES = {"models", "bounties", "deployments", "submissions", "payouts", "retrain_runs", "watcher_state",
              "training_images", "prizes", "pool_moves"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No BOUNTY_* variable from the caller's shell, no cached settings or engine across tests."""
    for name in [name for name in os.environ if name.startswith("BOUNTY_")]:
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend. The SQLite file's directory does not exist yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'bounty.sqlite'}"
    database: str = request.getfixturevalue("postgres")
    return reset_schema(database)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    migrate.upgrade(url)
    engine = db.make_engine(url)
    yield engine
    engine.dispose()


def app_tables(url: str) -> set[str]:
    engine = db.make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) & APP_TABLES
    finally:
        engine.dispose()


# -- migrations ----------------------------------------------------------------------------------------

def test_migrations_go_up_down_and_up_again(url: str) -> None:
    assert migrate.current(url) is None
    assert migrate.upgrade(url) == migrate.head() == "0004"
    assert app_tables(url) == APP_TABLES
    assert migrate.upgrade(url) == "0004"  # a second upgrade changes nothing
    assert migrate.downgrade(url, "base") is None
    assert app_tables(url) == set()
    assert migrate.upgrade(url, "head") == migrate.current(url) == "0004"
    assert app_tables(url) == APP_TABLES


def test_upgrading_a_database_with_data_keeps_every_row_and_its_references(url: str) -> None:
    """A database in use at 0002 (a bounty, a deployment, a paid submission, a kept image) moves to 0003: the
    tables the migration rebuilds on SQLite keep their rows, the references into them hold, old bounties are
    open, and the new statuses and reasons are accepted."""
    migrate.upgrade(url, "0002")
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO models (id, weights_sha256, version, artifact_path, config, metrics) "
                              "VALUES (1, :h, 1, 'x', '{}', '{}')"), {"h": "0" * 64})
            conn.execute(text("INSERT INTO bounties (id, digits, payout_sats, min_margin, max_fee_sats, budget_sats, "
                              "owner_pubkey, network, status) VALUES (1, '[7]', 500, 0, 9000, 100000, :k, "
                              "'testnet', 'active')"), {"k": "02" + "11" * 32})
            conn.execute(text("INSERT INTO deployments (id, bounty_id, version, model_id, locking_script_sha256, "
                              "deploy_txid, current_txid, current_vout, current_satoshis, status) VALUES "
                              "(1, 1, 1, 1, :h, :t, :t, 0, 100000, 'active')"), {"h": "1" * 64, "t": TXID})
            conn.execute(text("INSERT INTO submissions (id, bounty_id, deployment_id, txid, input_index, pixels, "
                              "recipient_address, recipient_pkh, predicted_label, margin, model_sha256, status, "
                              "source) VALUES (1, 1, 1, :t, 0, :p, 'addr', :pkh, 7, 10, :h, 'confirmed', 'api')"),
                         {"t": "cd" * 32, "p": PIXELS, "pkh": "22" * 20, "h": "0" * 64})
            conn.execute(text("INSERT INTO payouts (id, submission_id, bounty_id, txid, vout, satoshis, fee_sats, "
                              "recipient_address) VALUES (1, 1, 1, :t, 1, 500, 8566, 'addr')"), {"t": "cd" * 32})
            conn.execute(text("INSERT INTO training_images (id, spend_key, submission_id, bounty_id, label, pixels, "
                              "pixels_sha256, review, holdout) VALUES (1, 'k', 1, 1, 7, :p, :h, 'pending', false)"),
                         {"p": PIXELS, "h": "0" * 64})
        assert migrate.upgrade(url) == "0004"
        with Session(engine) as session:
            bounty = session.get(Bounty, 1)
            row = session.get(Submission, 1)
            assert bounty is not None and row is not None
            assert (bounty.mode, bounty.appeal_gap, bounty.attestor_pubkey) == ("open", 0, None)
            assert (row.pixels, row.appeal, row.claimed_digit, row.payout is not None) == (PIXELS, False, None, True)
            row.status, row.reason = SubmissionStatus.VETTING, RejectReason.CLAIMED_BY_ANOTHER
            session.commit()
            with pytest.raises(IntegrityError):  # a vetted bounty needs its attestor
                session.execute(text("UPDATE bounties SET mode = 'vetted' WHERE id = 1"))
            session.rollback()
        with pytest.raises(DatabaseError, match="refused a migration"):  # a row 0002 cannot hold: nothing changes
            migrate.downgrade(url, "0002")
        assert migrate.current(url) == "0004"
        with engine.begin() as conn:
            conn.execute(text("UPDATE submissions SET status = 'confirmed', reason = NULL"))
        assert migrate.downgrade(url, "0002") == "0002"
    finally:
        engine.dispose()


def test_the_migrations_build_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        # Alembic does not compare CHECK constraints: compare their names and the values they list.
        inspector = inspect(connection)
        reflected = {check["name"]: _tokens(check["sqltext"])
                     for table in APP_TABLES for check in inspector.get_check_constraints(table)}
    declared = {str(check.name): _tokens(str(check.sqltext.compile(dialect=engine.dialect,
                                                                   compile_kwargs={"literal_binds": True})))
                for table in Base.metadata.tables.values()
                for check in table.constraints if isinstance(check, CheckConstraint)}
    assert len(declared) == 36 and reflected == declared


def _tokens(sql: str) -> tuple[frozenset[str], frozenset[str]]:
    """The quoted literals and the integers in a CHECK's SQL (PostgreSQL rewrites the rest)."""
    return frozenset(re.findall(r"'([^']*)'", sql)), frozenset(re.findall(r"\b\d+\b", sql))


def test_migrating_an_unknown_revision_or_an_unreachable_server_says_so(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="Can't locate revision identified by 'nope'"):
        migrate.upgrade(f"sqlite:///{tmp_path / 'bounty.sqlite'}", "nope")
    with pytest.raises(DatabaseUnavailable, match=r"postgres:\*\*\*@127.0.0.1:1/") as caught:
        migrate.current("postgresql+psycopg://postgres:hunter2@127.0.0.1:1/bounty")
    assert "hunter2" not in str(caught.value)


# -- what the database itself refuses ------------------------------------------------------------------

def seed(session: Session, bounty_status: BountyStatus = BountyStatus.ACTIVE) -> Deployment:
    """A model, a bounty for 7s and its first, active deployment."""
    model = ModelVersion(weights_sha256="11" * 32, version=1, artifact_path="model/default",
                         config={"hidden": 64}, metrics={"int_accuracy": 0.9826})
    bounty = Bounty(digits=[7], payout_sats=500, min_margin=1000, max_fee_sats=20_000, budget_sats=100_000,
                    owner_pubkey="02" + "33" * 32, network=Network.TESTNET, status=bounty_status)
    deployment = Deployment(bounty=bounty, version=1, model=model, locking_script_sha256="44" * 32,
                            deploy_txid="55" * 32, current_txid="55" * 32, current_vout=0,
                            current_satoshis=100_000)
    session.add(deployment)
    session.flush()
    return deployment


def submission(deployment: Deployment, **overrides: Any) -> Submission:
    values: dict[str, Any] = dict(
        bounty_id=deployment.bounty_id, deployment_id=deployment.id, txid=TXID, pixels=PIXELS,
        recipient_address="mfWxJ45yp2SFn7UciZyNpvDKrzbhyfKrY8", recipient_pkh="00" * 20, predicted_label=7,
        margin=2**40, model_sha256="11" * 32, status=SubmissionStatus.SEEN, source=SubmissionSource.API)
    return Submission(**(values | overrides))


def test_a_spend_is_recorded_once(engine: Engine) -> None:
    with Session(engine) as session:
        deployment = seed(session)
        session.add_all([submission(deployment), submission(deployment, input_index=1),
                         submission(deployment, txid=None), submission(deployment, txid=None)])  # not built yet
        session.commit()
        session.add(submission(deployment))  # the same txid:input_index again (a retried task)
        with pytest.raises(IntegrityError):
            session.commit()


def test_a_bounty_has_at_most_one_active_deployment(engine: Engine) -> None:
    with Session(engine) as session:
        first = seed(session)
        session.commit()

        def successor(version: int) -> Deployment:
            return Deployment(bounty_id=first.bounty_id, version=version, model_id=first.model_id,
                              locking_script_sha256="66" * 32, deploy_txid=f"{version:02d}" * 32,
                              current_txid=f"{version:02d}" * 32, current_vout=0, current_satoshis=99_000)

        session.add(successor(2))  # a migration that forgot to retire the old contract
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        first.status = DeploymentStatus.MIGRATED
        session.add(successor(2))
        session.commit()
        session.add(successor(2))  # version numbers are per bounty and unique
        with pytest.raises(IntegrityError):
            session.commit()


def test_a_submission_round_trips_with_its_pixels(engine: Engine) -> None:
    with Session(engine) as session:
        deployment = seed(session)
        session.add(submission(deployment, status=SubmissionStatus.REJECTED, reason=RejectReason.LOW_MARGIN,
                               margin=-(2**40), block_height=812_345))
        session.commit()
    with Session(engine) as session:
        stored = session.scalars(select(Submission)).one()
        assert stored.pixels == PIXELS and len(stored.pixels) == 784
        assert (stored.txid, stored.input_index, stored.confirmations) == (TXID, 0, 0)  # server defaults
        assert stored.status is SubmissionStatus.REJECTED and stored.reason is RejectReason.LOW_MARGIN
        assert stored.margin == -(2**40) and stored.block_height == 812_345
        assert stored.created_at.tzinfo is UTC and abs(datetime.now(UTC) - stored.created_at).total_seconds() < 60
        bounty = session.get_one(Bounty, stored.bounty_id)
        assert bounty.digits == [7] and bounty.status is BountyStatus.ACTIVE and bounty.network is Network.TESTNET


def test_timestamps_are_utc_and_naive_ones_are_refused(engine: Engine) -> None:
    noon = datetime(2026, 11, 28, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with Session(engine) as session:
        session.add(WatcherState(key="chain_cursor", value="0", updated_at=noon))
        session.commit()
        session.expire_all()
        stored = session.get_one(WatcherState, "chain_cursor")
        assert stored.updated_at == noon and stored.updated_at.tzinfo is UTC and stored.updated_at.hour == 10
        stored.updated_at = datetime(2026, 11, 28, 12, 0)  # naive: which zone?
        with pytest.raises(StatementError, match="naive datetime"):
            session.flush()


@pytest.mark.parametrize(("column", "value"), [
    ("status", "lost"),  # not a status
    ("reason", "bad_luck"),  # not a reason
    ("source", "email"),
    ("pixels", PIXELS[:783]),  # one pixel short
    ("predicted_label", 10),
])
def test_the_database_refuses_values_the_models_forbid(engine: Engine, column: str, value: Any) -> None:
    """Raw SQL, as another client would write it: the CHECK constraints hold on both backends."""
    with Session(engine) as session:
        deployment = seed(session)
        row = dict(bounty_id=deployment.bounty_id, txid=TXID, pixels=PIXELS, recipient_address="m", recipient_pkh="00",
                   predicted_label=7, margin=1, model_sha256="11" * 32, status="pending", reason=None, source="api")
        insert = text(f"INSERT INTO submissions ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})")
        session.execute(insert, row)  # the valid row goes in
        with pytest.raises(IntegrityError):
            session.execute(insert, row | {"txid": "cd" * 32, column: value})


# -- engines and sessions ------------------------------------------------------------------------------

def test_sqlite_engines_use_wal_and_enforce_foreign_keys(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'new' / 'dir' / 'bounty.sqlite'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert (tmp_path / "new" / "dir" / "bounty.sqlite").exists()
    finally:
        engine.dispose()


def test_session_scope_commits_or_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path))
    migrate.upgrade(get_settings().database)
    engine = db.make_engine(get_settings().database)
    with db.session_scope(engine) as session:
        deployment = seed(session)
        deployment_id = deployment.id
    assert deployment.status is DeploymentStatus.ACTIVE  # still readable after the scope ended
    with pytest.raises(RuntimeError), db.session_scope(engine) as session:
        session.get_one(Deployment, deployment_id).status = DeploymentStatus.WITHDRAWN
        session.flush()
        raise RuntimeError("the broadcast failed")
    with db.session_scope(engine) as session:
        assert session.get_one(Deployment, deployment_id).status is DeploymentStatus.ACTIVE  # rolled back
    engine.dispose()


# -- settings ------------------------------------------------------------------------------------------

def test_bounty_home_holds_the_embedded_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "home"))
    settings = Settings(_env_file=None)
    assert settings.database == f"sqlite:///{tmp_path / 'home' / 'bounty.sqlite'}"
    assert settings.chain_path == tmp_path / "home" / "chain.sqlite"
    assert (settings.chain, settings.network, settings.fee_rate, settings.embedded) == ("local", "testnet", 100, True)
    assert settings.arc_api_key is None and settings.arc_callback_token is None  # secrets have no defaults
    migrate.upgrade(settings.database)
    assert (tmp_path / "home" / "bounty.sqlite").is_file()
    assert Settings(_env_file=None, home=Path("~/elsewhere")).home == Path.home() / "elsewhere"


def test_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_ARC_API_KEY", "arc-key-s3cret")
    monkeypatch.setenv("BOUNTY_ARC_CALLBACK_TOKEN", "token-s3cret")
    monkeypatch.setenv("BOUNTY_DATABASE_URL", "postgres://bounty:pw-s3cret@db:5432/bounty")
    monkeypatch.setenv("BOUNTY_REDIS_URL", "redis://:redis-s3cret@cache:6379/0")
    settings = Settings(_env_file=None)
    shown = repr(settings) + str(settings)
    assert "s3cret" not in shown and "postgresql+psycopg://bounty:***@db:5432/bounty" in shown
    assert settings.arc_api_key is not None and settings.arc_api_key.get_secret_value() == "arc-key-s3cret"
    assert settings.database == "postgresql+psycopg://bounty:pw-s3cret@db:5432/bounty"  # the driver installed here


def test_a_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("BOUNTY_FEE_RATE=250\nBOUNTY_NETWORK=mainnet\nOTHER_TOOL=ignored\n")
    monkeypatch.chdir(tmp_path)
    assert (get_settings().fee_rate, get_settings().network) == (250, "mainnet")
    monkeypatch.setenv("BOUNTY_FEE_RATE", "300")  # the environment wins over the file
    assert Settings().fee_rate == 300


@pytest.mark.parametrize("overrides", [
    {"fee_rate": 0},
    {"network": "regtest"},
    {"chain": "network"},  # without an ARC endpoint nothing could be broadcast
    {"min_confirmations": -1},
    {"max_upload_bytes": 100},
    {"operator_wif_env": ""},
])
def test_settings_refuse_bad_values(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **overrides)


def test_bad_settings_name_the_variable_not_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_RATE_LIMIT_PER_MINUTE", "s3cret-by-mistake")
    with pytest.raises(ConfigError, match="BOUNTY_RATE_LIMIT_PER_MINUTE: Input should be a valid integer") as caught:
        get_settings()
    assert "s3cret" not in str(caught.value)


# -- the CLI -------------------------------------------------------------------------------------------

def test_the_cli_migrates_the_configured_database(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if url.startswith("sqlite"):
        monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "state"))
    else:  # the test server trusts any password: check that it is never printed
        monkeypatch.setenv("BOUNTY_DATABASE_URL", url.replace("postgres@", "postgres:hunter2@"))
    monkeypatch.chdir(tmp_path)  # the migration scripts are found wherever the command runs
    runner = CliRunner()

    def bounty(*args: str) -> dict[str, Any]:
        done = runner.invoke(app, ["db", *args, "--json"])
        assert done.exit_code == 0, done.output
        assert "hunter2" not in done.output
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    assert bounty("current") | {"database": ""} == {"database": "", "revision": None, "head": "0004",
                                                      "up_to_date": False}
    assert bounty("upgrade")["up_to_date"] is True
    assert bounty("current")["revision"] == "0004"
    assert bounty("downgrade", "base")["revision"] is None
    refused = runner.invoke(app, ["db", "upgrade", "--revision", "nope"])
    assert refused.exit_code == 1 and refused.stderr.startswith("error: ") and "'nope'" in refused.stderr
    assert "hunter2" not in refused.stderr
