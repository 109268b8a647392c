"""The `bounty` command as a user runs it: JSON out, one sentence and exit code 1 on bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from bsv import Transaction

from contracts.interpreter import validate_input

pytestmark = pytest.mark.subprocess  # each test runs the `bounty` command


def bounty(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "marketplace.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_model_eval_json() -> None:
    done = bounty("model", "eval", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["test_images"] == 10000 and report["int_accuracy"] >= 0.98
    assert len(report["weights_sha256"]) == 64 and report["nonzero_weights"] > 0


def test_contract_build_and_verify_json() -> None:
    built = json.loads(bounty("contract", "build", "--json").stdout)
    assert built["locking_script_bytes"] <= 500_000 and built["opcodes"] > 0 and built["scheme"]
    verified = bounty("contract", "verify", "--images", "12", "--json")
    assert verified.returncode == 0, verified.stderr
    result = json.loads(verified.stdout)
    assert result["images"] == result["agree"] == 12
    assert set(result) >= {"script_accuracy", "ms_per_image", "locking_script_bytes"}


@pytest.mark.parametrize("shape", ["chain", "pool"])
def test_contract_example_is_a_replayable_set(shape: str) -> None:
    done = bounty("contract", "example", "--shape", shape, "--json")
    assert done.returncode == 0, done.stderr
    example = json.loads(done.stdout)
    txs = {name: Transaction.from_hex(example[name])
           for name in ("funding_tx", "deploy_tx", "accept_tx", "reject_tx", "withdraw_tx")}
    by_id = {tx.txid(): tx for tx in txs.values()}
    for name, tx in txs.items():
        if name == "funding_tx":
            continue
        for tx_input in tx.inputs:  # every input spends an output of a transaction in the set
            source = by_id[tx_input.source_txid].outputs[tx_input.source_output_index]
            tx_input.satoshis, tx_input.locking_script = source.satoshis, source.locking_script
        if example["expected_valid"][name]:
            for index in range(len(tx.inputs)):
                validate_input(tx, index)
        else:
            with pytest.raises(Exception, match="invalid"):
                validate_input(tx, 0)


def test_contract_bench_json_for_both_shapes() -> None:
    figures = {}
    for shape in ("chain", "pool"):
        done = bounty("contract", "bench", "--shape", shape, "--images", "2", "--submissions", "2", "--prizes", "3",
                      "--json")
        assert done.returncode == 0, done.stderr
        figures[shape] = json.loads(done.stdout)
        assert figures[shape]["shape"] == shape
        assert set(figures[shape]) >= {"locking_script_bytes", "submission_tx_bytes", "bytes_per_paid_image",
                                       "fee_sats_per_paid_image", "validate_ms_per_submission",
                                       "validate_ms_first_submission", "fee_sats_per_submission", "agree"}
    pool, chain = figures["pool"], figures["chain"]
    assert pool["deploy_tx_bytes_per_prize"] < pool["bytes_per_paid_image"] <= 45_000 < chain["bytes_per_paid_image"]
    assert pool["submission_tx_bytes"] < 2_000 and pool["fee_sats_per_paid_image"] < chain["fee_sats_per_paid_image"]


@pytest.mark.parametrize("args", [["model", "eval", "--model", "/no/such/model"],
                                  ["contract", "verify", "--model", "/no/such/model"]])
def test_bad_input_is_one_sentence_and_exit_code_1(args: list[str], tmp_path: Path) -> None:
    done = bounty(*args)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


# --- user mistakes, --json and empty tables, on a fresh BOUNTY_HOME --------------------------------------------


def bounty_in(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`bounty ARGS` with its state under `home` and no BOUNTY_* variable of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUNTY_")} | {"BOUNTY_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "marketplace.cli", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=home.parent if home.parent.is_dir() else home.parent.parent)


def unwritable_home(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("not a directory")
    return tmp_path / "a-file" / "home"  # cannot be created, even by root


MISTAKES = [  # (what, arguments, home, words the one sentence must hold)
    ("unwritable BOUNTY_HOME", ["list"], unwritable_home, "BOUNTY_HOME"),
    ("unwritable BOUNTY_HOME, the chain", ["chain", "status"], unwritable_home, "BOUNTY_HOME"),
    ("unwritable BOUNTY_HOME, the database", ["db", "current"], unwritable_home, "BOUNTY_HOME"),
    ("budget beyond all coins", ["create", "--open", "--digit", "7", "--payout", "500", "--budget", str(10**20)],
     lambda tmp: tmp / "home", "21 million BSV"),
    ("budget beyond the faucet", ["create", "--open", "--digit", "7", "--payout", "500", "--budget", str(21 * 10**14)],
     lambda tmp: tmp / "home", "faucet"),
    ("unknown bounty", ["status", "42"], lambda tmp: tmp / "home", "no bounty 42"),
    ("unwritable BOUNTY_HOME, the wallet", ["wallet"], unwritable_home, "BOUNTY_HOME"),
    ("faucet to another network's address", ["chain", "faucet", "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", "5000"],
     lambda tmp: tmp / "home", "is a mainnet address and this dev chain runs on testnet"),
]


@pytest.mark.parametrize(("what", "args", "home", "words"), MISTAKES, ids=[m[0] for m in MISTAKES])
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_user_mistake_is_one_sentence_or_one_json_error(tmp_path: Path, what: str, args: list[str],
                                                          home: Callable[[Path], Path], words: str,
                                                          as_json: bool) -> None:
    done = bounty_in(home(tmp_path), *args, *(["--json"] if as_json else []))
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    if as_json:
        error = json.loads(done.stdout)
        assert list(error) == ["error"] and words in error["error"], error
    else:
        assert done.stdout == ""
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr


def test_serve_on_a_port_in_use_is_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = bounty_in(tmp_path / "home", "serve", "--port", str(port))
    assert done.returncode == 1
    assert done.stderr == (f"error: port {port} on 127.0.0.1 is in use: stop what holds it, or choose another "
                           "with --port\n")


LISTS = [  # (command, its JSON key, the first words of its table's header)
    (["list"], "bounties", "id digits payout"),
    (["review", "list"], "images", "id bounty digit"),
    (["review", "appeals"], "appeals", "id bounty claim"),
]


@pytest.mark.parametrize(("args", "key", "header"), LISTS, ids=[" ".join(a) for a, _, _ in LISTS])
def test_an_empty_list_is_one_json_object_or_a_table_header(tmp_path: Path, args: list[str], key: str,
                                                            header: str) -> None:
    as_json = bounty_in(tmp_path / "home", *args, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {key: []}
    table = bounty_in(tmp_path / "home", *args)
    assert table.returncode == 0, table.stderr
    assert " ".join(table.stdout.split()[:3]) == header


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_the_wallet_draws_its_qr_code_in_any_terminal(tmp_path: Path, encoding: str) -> None:
    """Half blocks where the terminal prints Unicode; `##` pairs (one line per module row) where it cannot."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUNTY_")} | {"BOUNTY_HOME": str(home),
                                                                                "PYTHONIOENCODING": encoding}
    done = subprocess.run([sys.executable, "-m", "marketplace.cli", "wallet"], capture_output=True, timeout=300,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode(encoding)
    address = text.split("address", 1)[1].split()[0]
    drawn = [line for line in text.splitlines() if line.strip() and set(line) <= set("\u2588\u2580\u2584# ")]
    if encoding == "ascii":
        assert len(drawn) == 29 + 8 and all(len(line) == 2 * (29 + 8) for line in drawn)  # version 3, quiet zone 4
    else:
        assert len(drawn) == (29 + 8 + 1) // 2 and all(len(line) == 29 + 8 for line in drawn)
    assert (home / "operator.key").read_text().strip() not in text
    assert address[0] in "mn"
