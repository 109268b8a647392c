"""`bounty wallet` on the dev chain and `bounty export --format csv|json`, run as an operator runs them (typer's
CliRunner on a fresh BOUNTY_HOME). The wallet on the network backend is tested against the stand-in in
tests/unit/test_chain_network.py."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import segno
from bsv import Network, PrivateKey
from typer.testing import CliRunner, Result

from marketplace.bounties import FAUCET_HEADROOM, create_bounty
from marketplace.chain import LocalChain
from marketplace.cli import app as cli
from marketplace.cli.wallet import QUIET_ZONE
from marketplace.schema import BountyMode
from marketplace.settings import get_settings
from marketplace.views import SubmissionRecord
from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import classify
from tests.integration.test_service import PAYOUT, client, post, settle
from tests.support.settings import settings_for

WALLET_FIELDS = {"address", "network", "chain", "balance_sats", "utxos"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh BOUNTY_HOME for the commands, no operator key in the environment, settings read anew."""
    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "home"))
    for variable in ("BOUNTY_OPERATOR_WIF", "BOUNTY_OPERATOR_KEY_FILE", "BOUNTY_NETWORK", "BOUNTY_CHAIN"):
        monkeypatch.delenv(variable, raising=False)
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def run(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def drawn_modules(text: str) -> list[list[bool]]:
    """The QR code a `bounty wallet` printed, read back as rows of modules (True: dark). Light modules are the ink:
    full and half blocks in Unicode, `##` pairs in the ASCII fallback."""
    lines = [line for line in text.splitlines() if line.strip() and set(line) <= set("\u2588\u2580\u2584 ")]
    if lines:
        rows = []
        for line in lines:
            rows.append([c not in "\u2588\u2580" for c in line])  # upper half light when full or upper block
            rows.append([c not in "\u2588\u2584" for c in line])
        return rows
    lines = [line for line in text.splitlines() if line.strip() and set(line) <= set("# ")]
    return [[line[i:i + 2] != "##" for i in range(0, len(line), 2)] for line in lines]


def address_modules(address: str) -> list[list[bool]]:
    """The QR code of `address` (segno's encoder), with its quiet zone."""
    code = segno.make(address, error="m", micro=False)
    return [[bool(m) for m in row] for row in code.matrix_iter(scale=1, border=QUIET_ZONE)]


def test_the_wallet_shows_its_address_as_a_qr_code_its_balance_and_its_unspent_outputs(home: Path) -> None:
    empty = json.loads(run("wallet", "--json").stdout)
    assert set(empty) == WALLET_FIELDS and "qr" not in empty
    address = empty["address"]
    assert (empty["network"], empty["chain"], empty["balance_sats"], empty["utxos"]) == ("testnet", "local", 0, [])
    assert address[0] in "mn"  # a testnet address: the dev chain runs on BOUNTY_NETWORK, testnet by default
    key = (home / "operator.key").read_text().strip()  # created on first use, as `bounty create` would

    shown = run("wallet").stdout
    code = address_modules(address)
    assert drawn_modules(shown)[:len(code)] == code  # the code holds the address (the last half line is padding)
    assert f"address    {address}" in shown and "balance    0 sats in 0 unspent outputs" in shown
    assert f"bounty chain faucet {address} " in shown  # how to fund it on the dev chain
    assert shown.rstrip().splitlines()[-1].split() == ["txid", "vout", "satoshis", "link"]  # the empty table's header
    assert drawn_modules(run("wallet", "--no-qr").stdout) == []

    paid = [json.loads(run("chain", "faucet", address, str(sats), "--json").stdout)["txid"] for sats in (70_000, 5_000)]
    funded = json.loads(run("wallet", "--json").stdout)
    assert funded["balance_sats"] == 75_000
    assert funded["utxos"] == [{"txid": txid, "vout": 0, "satoshis": sats, "txid_url": f"/chain/tx/{txid}"}
                               for txid, sats in zip(paid, (70_000, 5_000), strict=True)]
    table = run("wallet").stdout
    assert "balance    75,000 sats in 2 unspent outputs" in table
    assert [line.split() for line in table.rstrip().splitlines()[-2:]] == [
        [txid, "0", f"{sats:,}", f"/chain/tx/{txid}"] for txid, sats in zip(paid, (70_000, 5_000), strict=True)]

    created = json.loads(run("create", "--open", "--digit", "7", "--payout", "500", "--budget", "40000",
                             "--json").stdout)
    after = json.loads(run("wallet", "--json").stdout)  # the deployment spent coins: only unspent ones are listed
    with LocalChain(home / "chain.sqlite") as chain:
        assert all(chain.spender_of(u["txid"], u["vout"]) is None for u in after["utxos"])
        assert after["balance_sats"] == sum(u.satoshis for u in chain.utxos_for_address(address))
    assert created["contract_txid"] in {u["txid"] for u in after["utxos"]}  # the deployment's change came back
    topped_up = 40_000 + FAUCET_HEADROOM  # `create` had the dev chain's faucet add this first
    # a pool (the default shape) pays its deploy's fee from its budget: the wallet paid exactly the budget
    assert after["balance_sats"] == 75_000 + topped_up - 40_000
    for output in (empty, funded, after, shown, table):
        assert key not in json.dumps(output)  # the key itself never appears


def test_the_wallet_refuses_a_key_of_another_network_in_one_sentence(home: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    key = PrivateKey(9101, network=Network.MAINNET)
    monkeypatch.setenv("BOUNTY_OPERATOR_WIF", key.wif())
    for as_json in (False, True):
        done = CliRunner().invoke(cli, ["wallet", *(["--json"] if as_json else [])])
        assert done.exit_code == 1 and "Traceback" not in done.output and key.wif() not in done.output
        sentence = json.loads(done.stdout)["error"] if as_json else done.stderr.removeprefix("error: ").rstrip("\n")
        assert sentence == (f"the operator key is a mainnet key (address {key.address()}) and this service runs on "
                            "testnet (BOUNTY_NETWORK): configure a testnet key before funding it")
    monkeypatch.setenv("BOUNTY_NETWORK", "mainnet")
    get_settings.cache_clear()
    shown = json.loads(run("wallet", "--json").stdout)
    assert (shown["address"], shown["network"]) == (key.address(), "mainnet")


# -- export ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def new_sevens(shipped: ModelArtifact, mnist: Mnist) -> np.ndarray:
    """MNIST test 7s the classifier reads right, widest margin first (new handwriting to an index built without
    MNIST's test images)."""
    x = mnist.x_test.reshape(-1, 784)
    labels, margins = classify(shipped.integer, x)
    right = np.flatnonzero((labels == 7) & (mnist.y_test == 7))
    return x[right[np.argsort(-margins[right])]]


def test_export_writes_json_or_one_csv_row_per_submission(home: Path, new_sevens: np.ndarray, tmp_path: Path) -> None:
    from marketplace.runtime import open_runtime

    rt = open_runtime(settings_for(home, novelty_index_mnist_test=False, quota_per_payee_per_hour=0,
                                   quota_per_client_per_hour=0))
    vetted = create_bounty(rt, [7], PAYOUT, 100_000, mode=BountyMode.VETTED)
    open_ = create_bounty(rt, [7], PAYOUT, 100_000, mode=BountyMode.OPEN)
    empty = create_bounty(rt, [7], PAYOUT, 100_000, mode=BountyMode.OPEN)
    api = client(rt)
    assert post(api, vetted.id, new_sevens[0])["code"] == 202
    copied = post(api, vetted.id, new_sevens[0])  # refused by vetting: its figures differ from the first's
    assert copied["code"] == 422 and copied["refusal"]["reason"] == "duplicate", copied
    assert post(api, open_.id, new_sevens[1])["code"] == 202
    settle(rt)
    rt.close()

    fields = list(SubmissionRecord.model_fields)
    for bounty_id in (vetted.id, open_.id):
        exported = json.loads(run("export", str(bounty_id)).stdout)
        assert json.loads(run("export", str(bounty_id), "--format", "json").stdout) == exported
        submissions = exported["submissions"]
        text = run("export", str(bounty_id), "--format", "csv").stdout
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [int(row["id"]) for row in rows] == [s["id"] for s in submissions]  # one row per submission
        header = next(csv.reader(io.StringIO(text)))
        vetting = [column for column in header if column.startswith("vetting")]
        assert [column for column in header if not column.startswith("vetting")] == [f for f in fields
                                                                                       if f != "vetting"]
        assert header.index(vetting[0]) == fields.index("vetting")  # the flattened columns stand where it stood
        for row, submission in zip(rows, submissions, strict=True):
            for field in fields:
                if field != "vetting":
                    assert row[field] == cell(submission[field]), field
            figures = dict(flatten("vetting", submission["vetting"])) if submission["vetting"] else {}
            assert {c: row[c] for c in vetting if row[c] != ""} == {k: cell(v) for k, v in figures.items()
                                                                     if v is not None}
        if bounty_id == vetted.id:
            assert {"vetting.novelty.passed", "vetting.novelty.copy_of", "vetting.judge.p_claimed",
                    "vetting.judge.reason"} <= set(vetting)
            assert [row["vetting.novelty.passed"] for row in rows] == ["true", "false"]
            assert rows[0]["status"] == "confirmed" and rows[0]["txid_url"] == f"/chain/tx/{rows[0]['txid']}"
            assert rows[1]["vetting.novelty.copy_of"] == f"submission:{rows[0]['id']}"
        else:
            assert vetting == ["vetting"] and rows[0]["vetting"] == ""  # an open bounty's submissions are not vetted

    written = tmp_path / "out" / "vetted.csv"
    written.parent.mkdir()
    quiet = run("export", str(vetted.id), "--format", "csv", "--output", str(written))
    assert quiet.stdout == "" and written.read_bytes() == run("export", str(vetted.id), "--format", "csv").stdout_bytes
    assert written.read_bytes().count(b"\r\n") == 3  # header and two rows, RFC 4180 line ends
    as_json = tmp_path / "out" / "vetted.json"
    run("export", str(vetted.id), "-o", str(as_json))
    assert json.loads(as_json.read_text()) == json.loads(run("export", str(vetted.id)).stdout)

    none = run("export", str(empty.id), "--format", "csv").stdout  # no submission yet: the header alone
    assert none.splitlines() == [",".join(fields)]
    unwritable = CliRunner().invoke(cli, ["export", str(vetted.id), "--format", "csv", "-o",
                                          str(tmp_path / "no" / "such" / "dir.csv")])
    assert unwritable.exit_code == 1 and "Traceback" not in unwritable.output
    assert unwritable.stderr.startswith(f"error: cannot write the export to {tmp_path / 'no' / 'such' / 'dir.csv'}: ")
    missing = CliRunner().invoke(cli, ["export", "42", "--format", "csv"])
    assert missing.exit_code == 1 and missing.stderr == "error: there is no bounty 42\n"


def flatten(name: str, value: object) -> list[tuple[str, object]]:
    if isinstance(value, dict):
        return [pair for key, inner in value.items() for pair in flatten(f"{name}.{key}", inner)]
    return [(name, value)]


def cell(value: object) -> str:
    """What a CSV cell holds for a JSON value: empty for null, true/false, lists as JSON, the rest as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)
