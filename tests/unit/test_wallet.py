"""The operator wallet: where its key may come from, that the key never leaks, and that it pays correctly."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import pytest
from bsv import P2PKH, PrivateKey

from marketplace.chain import LocalChain, NetworkChain, TxState, Wallet
from marketplace.chain.errors import WalletError

KEY = PrivateKey(777)
WIF = KEY.wif()
PAYEE = PrivateKey(778).address()


def key_file(tmp_path: Path, mode: int, content: str = WIF) -> Path:
    path = tmp_path / "operator.wif"
    path.write_text(content + "\n")
    path.chmod(mode)
    return path


def test_the_key_comes_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_OPERATOR_WIF", WIF)
    wallet = Wallet.from_env()
    assert wallet.address == KEY.address() and wallet.public_key == KEY.public_key().serialize()
    monkeypatch.delenv("BOUNTY_OPERATOR_WIF")
    with pytest.raises(WalletError, match="BOUNTY_OPERATOR_WIF holds no operator key"):
        Wallet.from_env()


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_key_file_only_its_owner_can_read_is_accepted(tmp_path: Path, mode: int) -> None:
    assert Wallet.from_file(key_file(tmp_path, mode)).address == KEY.address()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o610])
def test_a_key_file_others_can_open_is_refused(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, mode)
    with pytest.raises(WalletError, match=f"mode {mode:o}.*run `chmod 600 {path}`") as caught:
        Wallet.from_file(path)
    assert WIF not in str(caught.value)


def test_a_missing_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WalletError, match="cannot be read: No such file"):
        Wallet.from_file(tmp_path / "absent.wif")


def test_a_new_key_file_is_created_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "new.wif"
    wallet = Wallet.create_key_file(path, testnet=True)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert Wallet.from_file(path).address == wallet.address and wallet.address[0] in "mn"  # a testnet address
    with pytest.raises(WalletError, match="refusing to overwrite"):
        Wallet.create_key_file(path)


def test_the_key_never_appears_in_repr_errors_pickles_or_logs(tmp_path: Path, chain: LocalChain,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wallet = Wallet.from_file(key_file(tmp_path, 0o600))
    wallet.fund_from_faucet(chain, 50_000)
    chain.broadcast(wallet.build_payment(chain, PAYEE, 10_000))
    shown = [repr(wallet), str(wallet), f"{wallet}", repr(vars(type(wallet))), caplog.text]
    assert all(WIF not in text and KEY.hex() not in text for text in shown)
    assert repr(wallet) == f"Wallet(address={KEY.address()!r})"
    with pytest.raises(TypeError, match="cannot be pickled") as pickled:
        pickle.dumps(wallet)
    assert WIF not in str(pickled.value)
    broken = WIF[:-4] + ("aaaa" if not WIF.endswith("aaaa") else "bbbb")  # a checksum error
    monkeypatch.setenv("BOUNTY_OPERATOR_WIF", broken)
    for load in (lambda: Wallet.from_file(key_file(tmp_path, 0o600, broken)), Wallet.from_env):
        with pytest.raises(WalletError, match="does not hold a valid WIF private key") as caught:
            load()
        error = caught.value
        assert broken not in str(error) and broken not in repr(error)
        assert error.__cause__ is None and error.__context__ is None  # the SDK's message is not kept either


def test_payments_use_the_largest_coins_first_and_return_change(chain: LocalChain) -> None:
    wallet = Wallet(KEY)
    for amount in (10_000, 50_000, 200_000):
        wallet.fund_from_faucet(chain, amount)
    tx = wallet.build_payment(chain, PAYEE, 120_000)
    assert [i.satoshis for i in tx.inputs] == [200_000]
    assert chain.broadcast(tx).state is TxState.MEMPOOL
    fee = 200_000 - sum(o.satoshis for o in tx.outputs)
    assert 0 < fee == -(-tx.byte_length() * 100 // 1000)  # the minimum fee at 100 sat/kB, rounded up
    assert tx.outputs[1].locking_script.serialize() == P2PKH().lock(KEY.address()).serialize()
    assert wallet.balance(chain) == 260_000 - 120_000 - fee
    two = wallet.build_payment(chain, PAYEE, 100_000)  # the change (~80k) and 50k together
    assert sorted(i.satoshis for i in two.inputs) == [50_000, 200_000 - 120_000 - fee]
    chain.broadcast(two)
    with pytest.raises(WalletError, match=f"holds {wallet.balance(chain)} sats in 2 outputs, not enough"):
        wallet.build_payment(chain, PAYEE, wallet.balance(chain))


def test_only_a_local_chain_has_a_faucet(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    with (NetworkChain(arc_url="http://127.0.0.1:9", journal_path=journal, network="test") as network,
          pytest.raises(WalletError, match="only a LocalChain has a faucet")):
        Wallet(KEY).fund_from_faucet(network, 1_000)  # type: ignore[arg-type]
