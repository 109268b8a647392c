"""The attestor key (vetted bounties' co-signer): where it comes from, that it is never the operator's key,
that it never shows, and that its signature is a valid ALL|FORKID signature over the final transaction."""

from __future__ import annotations

import logging
import pickle
import stat
from pathlib import Path

import pytest
from bsv import P2PKH, PrivateKey, Transaction, TransactionInput, TransactionOutput

from marketplace.attestor import Attestor
from marketplace.chain.errors import WalletError
from marketplace.errors import ConfigError
from marketplace.runtime import Runtime, open_runtime
from marketplace.settings import Settings

ATTESTOR = PrivateKey(4242)
OPERATOR = PrivateKey(4343)


def runtime(tmp_path: Path, **overrides: object) -> Runtime:
    return open_runtime(Settings(_env_file=None, home=tmp_path, **overrides))  # type: ignore[arg-type]


def test_on_the_dev_chain_a_key_file_is_created_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("BOUNTY_ATTESTOR_WIF", raising=False)
    monkeypatch.delenv("BOUNTY_OPERATOR_WIF", raising=False)
    caplog.set_level(logging.DEBUG)
    first = runtime(tmp_path).attestor
    path = tmp_path / "attestor.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert runtime(tmp_path).attestor.public_key == first.public_key, "the same key on the next start"
    assert first.public_key != runtime(tmp_path).wallet.public_key
    wif = path.read_text().strip()
    assert wif not in caplog.text and wif not in repr(first)


def test_the_key_comes_from_its_own_variable_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_ATTESTOR_WIF", ATTESTOR.wif())
    monkeypatch.setenv("BOUNTY_OPERATOR_WIF", OPERATOR.wif())
    assert runtime(tmp_path).attestor.public_key == ATTESTOR.public_key().serialize()
    key_file = tmp_path / "mine.key"
    key_file.write_text(PrivateKey(99).wif())
    key_file.chmod(0o644)
    with pytest.raises(WalletError, match="attestor key file .* is open to other users"):
        _ = runtime(tmp_path, attestor_key_file=key_file).attestor


def test_on_a_network_chain_a_missing_key_is_an_error_not_a_new_key(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BOUNTY_ATTESTOR_WIF", raising=False)
    rt = runtime(tmp_path, chain="network", arc_url="http://127.0.0.1:9")
    with pytest.raises(WalletError, match="BOUNTY_ATTESTOR_WIF holds no attestor key"):
        _ = rt.attestor
    assert not (tmp_path / "attestor.key").exists()


def test_the_operator_key_cannot_be_the_attestor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused when a vetted bounty is created; loading the attestor alone never loads the operator wallet (the
    API process holds only the attestor key in production)."""
    from marketplace.bounties import create_bounty
    from marketplace.schema import Bounty, BountyMode

    monkeypatch.setenv("BOUNTY_ATTESTOR_WIF", OPERATOR.wif())
    monkeypatch.setenv("BOUNTY_OPERATOR_WIF", OPERATOR.wif())
    rt = runtime(tmp_path)
    with pytest.raises(ConfigError, match="attestor key is the operator's key") as refused:
        create_bounty(rt, [7], 500, 100_000, mode=BountyMode.VETTED)
    assert OPERATOR.wif() not in str(refused.value)
    with rt.session() as session:
        assert session.query(Bounty).count() == 0
    monkeypatch.delenv("BOUNTY_OPERATOR_WIF")
    only_attestor = runtime(tmp_path / "api")  # no operator key here, as in the API service
    assert only_attestor.attestor.public_key == OPERATOR.public_key().serialize()


def test_a_bad_wif_is_refused_without_quoting_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_ATTESTOR_WIF", "L1notawif" + "x" * 40)
    with pytest.raises(WalletError, match="does not hold a valid WIF") as refused:
        Attestor.from_env()
    assert "notawif" not in str(refused.value) and refused.value.__context__ is None


def test_its_signature_covers_the_whole_transaction_and_it_cannot_be_pickled() -> None:
    attestor = Attestor(ATTESTOR)
    source = Transaction(tx_outputs=[TransactionOutput(P2PKH().lock(OPERATOR.address()), 10_000)])
    tx = Transaction(tx_inputs=[TransactionInput(source_transaction=source, source_output_index=0,
                                              unlocking_script_template=P2PKH().unlock(OPERATOR))],
                     tx_outputs=[TransactionOutput(P2PKH().lock(PrivateKey(7).address()), 9_000)])
    signature = attestor.sign(tx, 0)
    assert signature[-1] == 0x41
    public = ATTESTOR.public_key()
    assert public.verify(signature[:-1], tx.preimage(0))
    tx.outputs[0].locking_script = P2PKH().lock(PrivateKey(8).address())  # the payee swapped after signing
    assert not public.verify(signature[:-1], tx.preimage(0))
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(attestor)
