"""The operator key never leaks: a whole run on the embedded default with a known key (API, watcher, mining,
CLI, errors), then every byte the run produced is searched for the key in all its forms. Also: the ARC
secrets in Settings never show in repr, logs or `bounty db current --json`."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import sqlite3
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bsv import Network, PrivateKey
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from marketplace.api import create_app
from marketplace.bounties import create_bounty, fund_bounty, withdraw_bounty
from marketplace.chain.errors import TransactionRejected, WalletError
from marketplace.chain.wallet import Wallet
from marketplace.cli import app as cli
from marketplace.runtime import OPERATOR_KEY_FILE, open_runtime
from marketplace.schema import BountyMode
from marketplace.settings import Settings, get_settings
from marketplace.watcher import Watcher
from model.artifact import ModelArtifact
from model.data import Mnist
from model.errors import BountyError
from model.reference import classify
from tests.support.images import paper_png

PAYOUT = 500
USER = PrivateKey(7101, network=Network.TESTNET)
ADMIN_TOKEN = "admin-token-0e8b4c7f19d2a635"


class Evidence:
    """Everything the run produced that a person or another program could see, as text or bytes."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.blobs: dict[str, bytes] = {}

    def text(self, where: str, value: str) -> None:
        self.texts[f"{len(self.texts):04d} {where}"] = value

    def blob(self, where: str, value: bytes) -> None:
        self.blobs[f"{len(self.blobs):04d} {where}"] = value

    def exception(self, where: str, exc: BaseException) -> None:
        self.text(f"{where}: str", str(exc))
        self.text(f"{where}: repr", repr(exc))
        self.text(f"{where}: traceback", "".join(traceback.format_exception(exc)))
        for note in getattr(exc, "__notes__", ()):
            self.text(f"{where}: note", note)

    def raises(self, where: str, kind: type[BaseException], call: Callable[[], object]) -> BaseException:
        with pytest.raises(kind) as caught:
            call()
        self.exception(where, caught.value)
        return caught.value

    def leaks(self, needles: dict[str, bytes]) -> list[str]:
        found = []
        for where, text in self.texts.items():
            data = text.encode("utf-8", "surrogateescape")
            found += [f"{name} in {where}" for name, needle in needles.items() if needle in data]
        for where, data in self.blobs.items():
            found += [f"{name} in {where}" for name, needle in needles.items() if needle in data]
        return found


def secret_forms(key: PrivateKey) -> dict[str, bytes]:
    wif = key.wif()
    raw = key.serialize()
    assert len(raw) == 32
    return {"WIF": wif.encode(), "hex": raw.hex().encode(), "HEX": raw.hex().upper().encode(), "raw 32 bytes": raw}


class Recorder:
    """A TestClient whose every response (status, headers, body) goes into the evidence."""

    def __init__(self, app: Any, evidence: Evidence) -> None:
        self.api = TestClient(app)
        self.evidence = evidence

    def __call__(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self.api.request(method, url, **kwargs)
        where = f"HTTP {method} {url} -> {response.status_code}"
        self.evidence.text(f"{where} headers", "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items()))
        self.evidence.blob(f"{where} body", response.content)
        return response


@pytest.fixture
def evidence() -> Evidence:
    return Evidence()


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Every log record at DEBUG and above, from every logger (also those that do not propagate)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    caplog.set_level(logging.DEBUG)
    root.addHandler(handler)
    extra: list[logging.Logger] = []
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and not logger.propagate:
            logger.addHandler(handler)
            extra.append(logger)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        for logger in extra:
            logger.removeHandler(handler)


@pytest.fixture
def images(shipped: ModelArtifact, mnist: Mnist) -> dict[str, np.ndarray]:
    x = mnist.x_test[:400].reshape(-1, 784)
    labels, margins = classify(shipped.integer, x)
    sevens = np.where(labels == 7)[0]
    return {"sevens": x[sevens[np.argsort(-margins[sevens])]], "others": x[labels != 7]}


def _files_bytes(home: Path, evidence: Evidence, label: str) -> None:
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        evidence.blob(f"{label} file {path.relative_to(home)}", path.read_bytes())


def _checkpoint_and_dump(path: Path, evidence: Evidence) -> None:
    """Fold the WAL into the main file, then add the main file's bytes and a full SQL dump to the evidence."""
    conn = sqlite3.connect(path)
    try:
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
        assert busy == 0, f"{path.name}: the checkpoint was blocked"
        evidence.text(f"SQL dump of {path.name}", "\n".join(conn.iterdump()))
    finally:
        conn.close()
    evidence.blob(f"{path.name} after checkpoint", path.read_bytes())


def test_the_operator_key_never_leaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evidence: Evidence,
                                      all_logs: io.StringIO, caplog: pytest.LogCaptureFixture,
                                      images: dict[str, np.ndarray]) -> None:
    key = PrivateKey(network=Network.TESTNET)
    attestor = PrivateKey(network=Network.TESTNET)  # the vetted bounties' co-signer: a secret just the same
    wif = key.wif()
    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("BOUNTY_HOME", str(home))
    monkeypatch.setenv("BOUNTY_OPERATOR_WIF", wif)
    monkeypatch.setenv("BOUNTY_ATTESTOR_WIF", attestor.wif())
    monkeypatch.setenv("BOUNTY_ADMIN_TOKEN", ADMIN_TOKEN)  # the operator pages are on, and fetched below
    monkeypatch.setenv("BOUNTY_NOVELTY_INDEX_MNIST_TEST", "false")  # MNIST's test images count as new here
    monkeypatch.setenv("BOUNTY_RATE_LIMIT_PER_MINUTE", "100000")
    monkeypatch.delenv("BOUNTY_OPERATOR_KEY_FILE", raising=False)
    get_settings.cache_clear()
    try:
        _run_everything(key, home, tmp_path, monkeypatch, evidence, images, attestor)
    finally:
        get_settings.cache_clear()

    evidence.text("log handler", all_logs.getvalue())
    evidence.text("caplog", caplog.text)
    for record in caplog.records:  # arguments a formatter might show differently
        evidence.text(f"log record {record.name}", f"{record.getMessage()} {record.args!r} {record.exc_text or ''}")
    assert "DEBUG" in all_logs.getvalue()  # the capture worked at DEBUG

    assert not (home / OPERATOR_KEY_FILE).exists()  # the key came from the environment, as configured
    _files_bytes(home, evidence, "raw")
    for name in ("bounty.sqlite", "chain.sqlite"):
        _checkpoint_and_dump(home / name, evidence)
    _files_bytes(home, evidence, "checkpointed")

    # The search is able to find the key when it is there (in each form, and as the public parts are).
    probe = Evidence()
    probe.text("probe", f"x{wif}x {key.serialize().hex()}")
    probe.blob("probe", b"\0" + key.serialize() + b"\0")
    assert {f.split(" in ")[0] for f in probe.leaks(secret_forms(key))} == {"WIF", "hex", "raw 32 bytes"}
    public = key.public_key().serialize().hex().encode()
    assert any(public in blob for blob in evidence.blobs.values())  # the owner pubkey is stored, as it should be

    assert evidence.leaks(secret_forms(key)) == []
    assert evidence.leaks(secret_forms(attestor)) == []
    assert evidence.leaks({"admin token": ADMIN_TOKEN.encode()}) == []
    assert any(attestor.public_key().serialize().hex().encode() in blob for blob in evidence.blobs.values())
    assert len(evidence.texts) > 60 and len(evidence.blobs) > 40  # sanity: the run produced what was searched


def _run_everything(key: PrivateKey, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    evidence: Evidence, images: dict[str, np.ndarray], attestor: PrivateKey) -> None:
    settings = get_settings()
    evidence.text("repr(settings)", repr(settings))
    evidence.text("str(settings)", str(settings))
    evidence.text("settings json", settings.model_dump_json())
    rt = open_runtime(settings)
    try:
        wallet = rt.wallet
        assert wallet.public_key == key.public_key().serialize()  # the known key is the operator key
        evidence.text("repr(wallet)", repr(wallet))
        evidence.text("str(wallet)", str(wallet))
        evidence.text("wallet attributes", repr({name: getattr(wallet, name) for name in ("address", "public_key")}))
        evidence.raises("pickling the wallet", TypeError, lambda: pickle.dumps(wallet))
        evidence.text("repr(chain)", repr(rt.chain))

        bounty = create_bounty(rt, [7], PAYOUT, 100_000)
        evidence.text("create_bounty", bounty.model_dump_json())
        evidence.text("fund_bounty", fund_bounty(rt, bounty.id, 20_000).model_dump_json())
        bid = bounty.id

        call = Recorder(create_app(rt, background=False), evidence)
        address = USER.address()
        accepted = [call("POST", f"/bounties/{bid}/submissions", json={"pixels": p.tolist(), "address": address})
                    for p in images["sevens"][:2]]
        assert [r.status_code for r in accepted] == [202, 202]
        upload = call("POST", f"/bounties/{bid}/submissions", data={"address": address},
                      files={"image": ("seven.png", paper_png(images["sevens"][2], 4), "image/png")})
        assert upload.status_code == 202, upload.text
        refused = call("POST", f"/bounties/{bid}/submissions",
                       json={"pixels": images["others"][0].tolist(), "address": address})
        assert refused.status_code == 422 and refused.json()["refusal"]["predicted"] != 7
        refused_upload = call("POST", f"/bounties/{bid}/submissions", data={"address": address},
                              files={"image": ("other.png", paper_png(images["others"][1], 4), "image/png")})
        assert refused_upload.status_code == 422
        assert call("POST", "/classify", json={"pixels": images["sevens"][0].tolist(), "bounty_id": bid}
                    ).status_code == 200
        vetted = create_bounty(rt, [7], PAYOUT, 100_000, mode=BountyMode.VETTED)  # the attestor co-signs its pay
        assert vetted.attestor_pubkey == attestor.public_key().serialize().hex()
        evidence.text("create vetted", vetted.model_dump_json())
        paid = call("POST", f"/bounties/{vetted.id}/submissions",
                    json={"pixels": images["sevens"][5].tolist(), "address": address})
        assert paid.status_code == 202, paid.text
        replay = call("POST", f"/bounties/{vetted.id}/submissions",
                      json={"pixels": images["sevens"][5].tolist(), "address": address})
        assert replay.status_code == 422 and replay.json()["refusal"]["reason"] == "duplicate"
        assert call("POST", "/classify", files={"image": ("s.png", paper_png(images["sevens"][3], 4), "image/png")},
                    data={"bounty_id": str(bid)}).status_code == 200

        # bad input, unknown ids, closed routes
        hostile: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", f"/bounties/{bid}/submissions", {"json": {"pixels": [0] * 783, "address": address}}),
            ("POST", f"/bounties/{bid}/submissions", {"json": {"pixels": [0] * 784, "address": "not-an-address"}}),
            ("POST", f"/bounties/{bid}/submissions", {"json": {"pixels": [0] * 784, "address": key.address()}}),
            ("POST", f"/bounties/{bid}/submissions", {"json": {"pixels": [0] * 784,
                                                                "address": PrivateKey(5).address()}}),
            ("POST", f"/bounties/{bid}/submissions", {"content": b'{"pixels": [0,', "headers": {
                "content-type": "application/json"}}),
            ("POST", f"/bounties/{bid}/submissions", {"files": {"image": ("x.png", os.urandom(3000), "image/png")},
                                                       "data": {"address": address}}),
            ("POST", f"/bounties/{bid}/submissions", {"files": {"image": (
                "x.png", paper_png(images["sevens"][4], 4)[:200], "image/png")}, "data": {"address": address}}),
            ("POST", f"/bounties/{bid}/submissions", {"data": {"address": address},
                                                       "files": {"other": ("x", b"1", "text/plain")}}),
            ("POST", f"/bounties/{bid}/submissions", {"json": {"pixels": "wif", "address": key.wif()[:-1]}}),
            ("POST", "/bounties/999/submissions", {"json": {"pixels": images["sevens"][0].tolist(),
                                                            "address": address}}),
            ("POST", "/bounties/abc/submissions", {"json": {}}),
            ("POST", "/classify", {"json": {"pixels": [0] * 784, "bounty_id": 999}}),
            ("POST", "/classify", {"json": {"pixels": [300] * 784}}),
            ("GET", "/bounties/999", {}), ("GET", "/bounties/-1", {}), ("GET", "/bounties/x", {}),
            ("GET", "/submissions/999", {}), ("GET", "/submissions/x", {}), ("GET", "/nowhere", {}),
            ("DELETE", "/bounties/1", {}), ("PUT", "/classify", {}),
        ]
        for method, url, kwargs in hostile:
            response = call(method, url, **kwargs)
            assert 400 <= response.status_code < 500, (method, url, response.status_code, response.text)

        # the watcher books what happened, blocks confirm it, everything is read back
        watcher = Watcher(rt)
        while watcher.run_once():
            pass
        assert rt.local_chain is not None
        rt.local_chain.mine(1)
        while watcher.run_once():
            pass
        ids = [r.json()["id"] for r in (*accepted, upload)]
        for url in ["/", "/healthz", "/network", "/bounties", f"/bounties/{bid}", "/openapi.json", "/docs", "/redoc",
                    f"/submissions?address={address}", *[f"/submissions/{i}" for i in ids]]:
            assert call("GET", url).status_code == 200, url
        assert call("GET", f"/submissions/{ids[0]}").json()["status"] == "confirmed"
        operator = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for url in ["/operator", "/operator/plots/activity.png", f"/operator/bounties/{bid}/export.csv",
                    f"/operator/bounties/{bid}/export.json"]:
            assert call("GET", url, headers=operator).status_code == 200, url
        assert call("GET", "/operator", headers={"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}).status_code == 401
        assert call("POST", "/operator/login", data={"token": ADMIN_TOKEN}, follow_redirects=False).status_code == 303
        assert call("POST", "/operator/login", data={"token": ADMIN_TOKEN + "x"}).status_code == 401

        view = withdraw_bounty(rt, bid)
        evidence.text("withdraw_bounty", view.model_dump_json())
        evidence.raises("withdrawing twice", BountyError, lambda: withdraw_bounty(rt, bid))
        rt.local_chain.mine(1)
        while watcher.run_once():
            pass
        assert call("GET", f"/bounties/{bid}").json()["status"] == "withdrawn"
        evidence.raises("submitting to a closed bounty", BountyError, lambda: fund_bounty(rt, bid, 1000))

        # wallet errors: more than it holds, a double spend of its coins, keys it cannot use
        evidence.raises("paying more than the wallet holds", WalletError,
                        lambda: wallet.build_payment(rt.chain, address, 10**15))
        spend = wallet.build_payment(rt.chain, address, 1000)
        rival = wallet.build_payment(rt.chain, address, 2000)  # the same largest coin, spent twice
        assert {(i.source_txid, i.source_output_index) for i in rival.inputs} & {
            (i.source_txid, i.source_output_index) for i in spend.inputs}
        rt.chain.broadcast(spend)
        evidence.raises("a double spend", TransactionRejected, lambda: rt.chain.broadcast(rival))
        _wallet_errors(key, tmp_path, monkeypatch, evidence)
    finally:
        rt.close()

    _cli(key, tmp_path, monkeypatch, evidence)


def _wallet_errors(key: PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evidence: Evidence) -> None:
    wif = key.wif()
    loose = tmp_path / "keys" / "loose.key"
    loose.parent.mkdir()
    loose.write_text(wif + "\n")
    loose.chmod(0o644)
    error = evidence.raises("a key file others can read", WalletError, lambda: Wallet.from_file(loose))
    assert "chmod 600" in str(error) and "644" in str(error)
    broken = tmp_path / "keys" / "broken.key"
    broken.write_text(wif[:-1] + ("1" if wif[-1] != "1" else "2"))  # a bad checksum
    broken.chmod(0o600)
    error = evidence.raises("a key file with a bad checksum", WalletError, lambda: Wallet.from_file(broken))
    assert broken.read_text() not in str(error)
    evidence.raises("a missing key file", WalletError, lambda: Wallet.from_file(tmp_path / "keys" / "none.key"))
    monkeypatch.setenv("BOUNTY_BAD_WIF", wif[:-3])
    error = evidence.raises("a truncated WIF in the environment", WalletError,
                            lambda: Wallet.from_env("BOUNTY_BAD_WIF"))
    assert wif[:-3] not in str(error)
    monkeypatch.setenv("BOUNTY_BAD_WIF", wif + "0")
    evidence.raises("a WIF with junk after it", WalletError, lambda: Wallet.from_env("BOUNTY_BAD_WIF"))
    evidence.raises("an empty variable", WalletError, lambda: Wallet.from_env("BOUNTY_NO_SUCH_VARIABLE"))

    # the service with the loose key file configured: the CLI answers with the chmod sentence, nothing more
    runner = CliRunner()
    monkeypatch.setenv("BOUNTY_OPERATOR_KEY_FILE", str(loose))
    get_settings.cache_clear()
    try:
        result = runner.invoke(cli, ["create", "--digit", "1", "--payout", "500", "--budget", "20000", "--json"])
        _cli_evidence(evidence, "create with a loose key file", result)
        assert result.exit_code == 1 and "chmod 600" in json.loads(result.stdout)["error"], result.output
    finally:
        monkeypatch.delenv("BOUNTY_OPERATOR_KEY_FILE")
        get_settings.cache_clear()


def _cli_evidence(evidence: Evidence, where: str, result: Any) -> None:
    evidence.text(f"CLI {where}: stdout", result.stdout)
    evidence.text(f"CLI {where}: stderr", result.stderr)
    evidence.text(f"CLI {where}: output", result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        evidence.exception(f"CLI {where}", result.exception)


def _cli(key: PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, evidence: Evidence) -> None:
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Any:
        result = runner.invoke(cli, list(args))
        _cli_evidence(evidence, " ".join(args), result)
        assert result.exit_code == code, (args, result.output, result.exception)
        return json.loads(result.stdout) if code == 0 and "--json" in args else None

    get_settings.cache_clear()
    created = run("create", "--digit", "3", "--payout", "600", "--budget", "40000", "--json")
    bid = str(created["id"])
    assert run("status", bid, "--json")["id"] == created["id"]
    assert created["id"] in [b["id"] for b in run("list", "--json")["bounties"]]
    run("fund", bid, "5000", "--json")
    run("submissions", bid, "--json")
    export = runner.invoke(cli, ["export", bid])
    _cli_evidence(evidence, "export", export)
    assert export.exit_code == 0 and json.loads(export.stdout)["bounty"]["id"] == created["id"]
    run("chain", "status", "--json")
    run("db", "current", "--json")
    assert run("withdraw", bid, "--json")["status"] == "withdrawn"
    run("withdraw", bid, "--json", code=1)
    run("status", "4242", "--json", code=1)
    run("create", "--digit", "12", "--payout", "600", "--budget", "40000", "--json", code=1)
    run("create", "--digit", "1", "--payout", "600", "--budget", "10", "--json", code=1)
    for command in (["list"], ["status", bid], ["submissions", bid], ["chain", "status"]):
        _cli_evidence(evidence, " ".join(command), runner.invoke(cli, command))


SECRET_KEY = "arc-key-5f1c0e9d7b3a40f8"
SECRET_TOKEN = "cb-token-93ab7e61d2c84f05"
DB_PASSWORD = "pg-pw-70d5e3c1"


def test_settings_never_show_the_arc_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             all_logs: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(_env_file=None, home=tmp_path / "home", chain="network",  # type: ignore[call-arg]
                        arc_url="http://127.0.0.1:9/arc", arc_api_key=SecretStr(SECRET_KEY),
                        arc_callback_token=SecretStr(SECRET_TOKEN),
                        arc_callback_url="https://example.invalid/callback",
                        database_url=f"postgresql://bounty:{DB_PASSWORD}@db.invalid:5432/bounty",
                        redis_url=f"redis://:{DB_PASSWORD}@redis.invalid:6379/0")
    assert settings.arc_api_key is not None and settings.arc_api_key.get_secret_value() == SECRET_KEY
    shown = [repr(settings), str(settings), f"{settings!r}", f"{settings}", repr(settings.arc_api_key),
             str(settings.arc_callback_token)]
    # a dump is data, not display: the URLs keep their passwords there, but the SecretStr fields stay masked
    for dumped in (settings.model_dump_json(), repr(settings.model_dump())):
        assert SECRET_KEY not in dumped and SECRET_TOKEN not in dumped

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BOUNTY_ARC_API_KEY", SECRET_KEY)
    monkeypatch.setenv("BOUNTY_ARC_CALLBACK_TOKEN", SECRET_TOKEN)
    monkeypatch.setenv("BOUNTY_ARC_CALLBACK_URL", "https://example.invalid/callback")
    runner = CliRunner()
    get_settings.cache_clear()
    try:
        current = runner.invoke(cli, ["db", "current", "--json"])
        assert current.exit_code == 0, current.output
        assert json.loads(current.stdout)["up_to_date"] in (True, False)
        shown += [current.stdout, current.stderr, repr(get_settings())]
        # an invalid setting next to the secrets: the error names the variable, never a value
        monkeypatch.setenv("BOUNTY_CHAIN", "network")
        monkeypatch.setenv("BOUNTY_FEE_RATE", "0")
        get_settings.cache_clear()
        refused = runner.invoke(cli, ["db", "current", "--json"])
        assert refused.exit_code == 1 and "BOUNTY_FEE_RATE" in json.loads(refused.stdout)["error"], refused.output
        shown += [refused.stdout, refused.stderr]
    finally:
        get_settings.cache_clear()
    shown += [all_logs.getvalue(), caplog.text]
    assert "settings loaded" in all_logs.getvalue()  # the debug line that prints the settings was captured
    for text in shown:
        for secret in (SECRET_KEY, SECRET_TOKEN, DB_PASSWORD):
            assert secret not in text, (secret, text[:2000])
