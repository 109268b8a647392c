"""The `bounty` command as a user runs it: JSON out, one sentence and exit code 1 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
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
