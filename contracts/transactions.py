"""Build every bounty transaction offline. Chain shape: deploy (funded from P2PKH wallet outputs), submission
(and a vetted bounty's appeal), owner withdraw and owner migrate. Pool shape (contracts.pool): deploy_prizes,
claim (and a vetted pool's appeal_claim), owner reclaim. No network call anywhere; fees follow bsv-sdk's
``SatoshisPerKilobyte`` at the rate given (100 sat/kB unless told otherwise)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from bsv import P2PKH, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput
from bsv.fee_models import SatoshisPerKilobyte
from bsv.utils import decode_address

from contracts.attestor import Attestor
from contracts.bounty import BountyContract
from contracts.errors import ContractError
from contracts.interpreter import TX_VERSION
from contracts.pool import PoolContract
from contracts.pushtx import preimage_is_signable

DEFAULT_FEE_RATE = 100  # sat/kB: the common floor in 2026
T = TypeVar("T")
MAX_LOCKTIME_TRIES = 256  # each try succeeds with probability ~1/4 (see contracts.pushtx)


@dataclass(frozen=True)
class Utxo:
    """An unspent output: where it is, what it holds, and the script that locks it."""

    txid: str
    vout: int
    satoshis: int
    locking_script: Script

    @classmethod
    def of(cls, tx: Transaction, vout: int) -> Utxo:
        out = tx.outputs[vout]
        return cls(tx.txid(), vout, out.satoshis, out.locking_script)


def address_pkh(address: str) -> bytes:
    """The public key hash of a P2PKH address (mainnet or testnet); a clear error otherwise."""
    try:
        pkh, _network = decode_address(address)
    except Exception as exc:  # bsv raises ValueError and others for malformed input
        raise ContractError(f"{address!r} is not a valid P2PKH address") from exc
    return bytes(pkh)


def _spend(utxo: Utxo, template: object) -> TransactionInput:
    tx_input = TransactionInput(source_txid=utxo.txid, source_output_index=utxo.vout,
                                unlocking_script_template=template)
    tx_input.satoshis, tx_input.locking_script = utxo.satoshis, utxo.locking_script
    return tx_input


def _fee(tx: Transaction, fee_rate: int) -> int:
    return int(SatoshisPerKilobyte(fee_rate).compute_fee(tx))


def _with_change(inputs: list[TransactionInput], outputs: list[TransactionOutput], change_to: str,
                 fee_rate: int) -> Transaction:
    """Sign a transaction whose P2PKH change output takes what the outputs and the fee leave."""
    tx = Transaction(inputs, [*outputs, TransactionOutput(P2PKH().lock(change_to), 0)], version=TX_VERSION)
    fee = _fee(tx, fee_rate)
    change = sum(i.satoshis for i in inputs) - sum(o.satoshis for o in outputs) - fee
    if change < 0:
        raise ContractError(f"the inputs hold {sum(i.satoshis for i in inputs)} sats, which cannot pay "
                            f"{sum(o.satoshis for o in outputs)} sats of outputs and a {fee}-sat fee")
    if change == 0:
        tx.outputs.pop()
    else:
        tx.outputs[-1].satoshis = change
    return tx.sign()


def pay(outputs: Sequence[TransactionOutput], wallet: Sequence[Utxo], wallet_key: PrivateKey, change_to: str,
        fee_rate: int = DEFAULT_FEE_RATE) -> Transaction:
    """A signed transaction paying `outputs` from P2PKH wallet outputs, change (if any) last."""
    inputs = [_spend(u, P2PKH().unlock(wallet_key)) for u in wallet]
    return _with_change(inputs, list(outputs), change_to, fee_rate)


def deploy(contract: BountyContract, amount: int, wallet: Sequence[Utxo], wallet_key: PrivateKey,
           change_to: str, fee_rate: int = DEFAULT_FEE_RATE) -> Transaction:
    """Lock `amount` sats in the contract (output 0), funded from P2PKH wallet outputs, change last."""
    if amount < contract.terms.payout:
        raise ContractError(f"a bounty of {amount} sats cannot pay even one {contract.terms.payout}-sat payout")
    return pay([TransactionOutput(contract.lock(), amount)], wallet, wallet_key, change_to, fee_rate)


def submission(contract: BountyContract, utxo: Utxo, image: np.ndarray, recipient: str,
               fee_rate: int = DEFAULT_FEE_RATE, attestor: Attestor | None = None,
               appeal: int | None = None) -> Transaction:
    """Spend the contract output with `image`: payout to `recipient`, the rest back to the contract.

    Ends the bounty (no successor) when what remains after the payout fits in the maximum fee.
    A vetted bounty needs its `attestor` (the key, or a signer: see contracts.attestor), which signs
    last, over the final transaction; `appeal` makes it an appeal claiming that digit.
    """
    terms = contract.terms
    pkh = address_pkh(recipient)
    remaining = utxo.satoshis - terms.payout
    if remaining < 0:
        raise ContractError(f"the bounty holds {utxo.satoshis} sats, less than its {terms.payout}-sat payout")
    final = remaining <= terms.max_fee
    payout_output = TransactionOutput(P2PKH().lock(pkh), terms.payout)

    def build(successor: int) -> Transaction:
        outputs = [payout_output] if final else [TransactionOutput(contract.lock(), successor), payout_output]
        unlock = contract.submission_unlock(image, pkh, successor, attestor, appeal)
        return Transaction([_spend(utxo, unlock)], outputs, version=TX_VERSION)

    tx = build(0 if final else remaining)
    fee = _fee(tx, fee_rate)
    if final:
        if remaining < fee:
            raise ContractError(f"after the payout the bounty keeps {remaining} sats, less than the {fee}-sat "
                                "fee of a last submission: it is exhausted and only the owner can withdraw")
        fee = remaining
    if fee > terms.max_fee:
        raise ContractError(f"this submission needs a {fee}-sat fee at {fee_rate} sat/kB, above the bounty's "
                            f"maximum fee of {terms.max_fee} sats")
    if not final:
        if remaining - fee < 1:
            raise ContractError("the bounty cannot pay this payout and keep a successor")
        tx = build(remaining - fee)  # a smaller N never needs a longer push: the fee still covers the size
    return _sign_pushtx(tx)


def appeal(contract: BountyContract, utxo: Utxo, image: np.ndarray, recipient: str, digit: int,
           attestor: Attestor, fee_rate: int = DEFAULT_FEE_RATE) -> Transaction:
    """A vetted bounty's appeal: pay for `image` as `digit`, the classifier's runner-up within the appeal gap."""
    return submission(contract, utxo, image, recipient, fee_rate, attestor=attestor, appeal=digit)


def _sign_pushtx(tx: Transaction) -> Transaction:
    """Find an nLockTime the compact OP_PUSH_TX check accepts, then sign: every signature (the attestor's
    included) is made over the final transaction."""
    for locktime in range(MAX_LOCKTIME_TRIES):
        tx.locktime = locktime
        if preimage_is_signable(tx.preimage(0)):
            return tx.sign()
    raise ContractError("no nLockTime in range gave a signable preimage")  # probability (3/4)**256


def withdraw(contract: BountyContract, utxo: Utxo, owner_key: PrivateKey, to: str,
             fee_rate: int = DEFAULT_FEE_RATE) -> Transaction:
    """Owner path: send the whole balance, less the fee, to `to`."""
    tx_input = _spend(utxo, contract.owner_unlock(owner_key))
    tx = Transaction([tx_input], [TransactionOutput(P2PKH().lock(address_pkh(to)), 0)], version=TX_VERSION)
    fee = _fee(tx, fee_rate)
    if utxo.satoshis <= fee:
        raise ContractError(f"the bounty holds {utxo.satoshis} sats, not enough for the {fee}-sat fee")
    tx.outputs[0].satoshis = utxo.satoshis - fee
    return tx.sign()


def migrate(contract: BountyContract, utxo: Utxo, owner_key: PrivateKey, successor: BountyContract,
            top_up_coins: Sequence[Utxo] = (), wallet_key: PrivateKey | None = None, change_to: str | None = None,
            fee_rate: int = DEFAULT_FEE_RATE, top_up: int = 0) -> Transaction:
    """Owner path: move the balance into `successor` (output 0) in one transaction.

    Without a top-up the fee comes out of the balance. With one, `top_up` sats from the wallet's
    `top_up_coins` join the balance, the wallet pays the fee and takes its change (output 1).
    """
    inputs = [_spend(utxo, contract.owner_unlock(owner_key))]
    if top_up_coins or top_up:
        if wallet_key is None or change_to is None or not top_up_coins or top_up <= 0:
            raise ContractError("a top-up needs a positive amount, wallet coins, the wallet key and a change address")
        inputs += [_spend(u, P2PKH().unlock(wallet_key)) for u in top_up_coins]
        output = TransactionOutput(successor.lock(), utxo.satoshis + top_up)
        return _with_change(inputs, [output], change_to, fee_rate)
    tx = Transaction(inputs, [TransactionOutput(successor.lock(), 0)], version=TX_VERSION)
    fee = _fee(tx, fee_rate)
    if utxo.satoshis - fee < successor.terms.payout:
        raise ContractError(f"{utxo.satoshis} sats less a {fee}-sat fee cannot fund the new contract")
    tx.outputs[0].satoshis = utxo.satoshis - fee
    return tx.sign()


# -- prize pools ---------------------------------------------------------------------------------------------


def deploy_prizes(pool: PoolContract, count: int, wallet: Sequence[Utxo], wallet_key: PrivateKey, change_to: str,
                  fee_rate: int = DEFAULT_FEE_RATE, reserve: int = 0, reserve_to: str | None = None) -> Transaction:
    """Create `count` prizes (outputs 0..count-1, `pool.prize_satoshis` each) from P2PKH wallet outputs; then,
    when asked, the owner's reserve (`reserve` sats to P2PKH `reserve_to`, the next output), then change.

    Funded from the reserve itself (the reserve's coin as `wallet`, `change_to` its address) the change is the
    new reserve: one transaction tops the pool up and keeps the rest of the budget where it was.
    """
    if count < 1:
        raise ContractError(f"a pool deploy creates at least one prize, not {count}")
    outputs = [TransactionOutput(pool.lock(), pool.prize_satoshis) for _ in range(count)]
    if reserve or reserve_to is not None:
        if reserve < 1 or reserve_to is None:
            raise ContractError("a reserve needs a positive amount and the address that holds it")
        outputs.append(TransactionOutput(P2PKH().lock(address_pkh(reserve_to)), reserve))
    return pay(outputs, wallet, wallet_key, change_to, fee_rate)


def claim(pool: PoolContract, prize: Utxo, image: np.ndarray, recipient: str, fee_rate: int = DEFAULT_FEE_RATE,
          attestor: Attestor | None = None, appeal: int | None = None, change_to: str | None = None) -> Transaction:
    """Spend one prize with `image`: the payout to `recipient` (output 0).

    What the prize holds beyond the payout is the claim's fee allowance. With `change_to` the part the fee
    at `fee_rate` does not need goes back there (output 1: the owner's reserve, say) when it is worth an
    output; without it the whole allowance is the fee. A vetted pool needs its `attestor` (the key, or a
    signer), which signs last, over the final transaction; `appeal` makes it an appeal claiming that digit.
    """
    _check_prize(pool, prize)
    allowance = prize.satoshis - pool.terms.payout
    if allowance < 0:
        raise ContractError(f"the prize holds {prize.satoshis} sats, less than its {pool.terms.payout}-sat payout")
    unlock = pool.claim_unlock(image, attestor, appeal)
    payee = TransactionOutput(P2PKH().lock(address_pkh(recipient)), pool.terms.payout)
    tx = Transaction([_spend(prize, unlock)], [payee], version=TX_VERSION)
    fee = _fee(tx, fee_rate)
    if allowance < fee:
        raise ContractError(f"the prize keeps {allowance} sats beyond the payout, less than the {fee}-sat fee of "
                            f"this claim at {fee_rate} sat/kB")
    if change_to is not None:
        tx.outputs.append(TransactionOutput(P2PKH().lock(address_pkh(change_to)), 0))
        leftover = allowance - _fee(tx, fee_rate)
        if leftover >= 1:
            tx.outputs[-1].satoshis = leftover
        else:
            tx.outputs.pop()
    return tx.sign()


def appeal_claim(pool: PoolContract, prize: Utxo, image: np.ndarray, recipient: str, digit: int,
                 attestor: Attestor, fee_rate: int = DEFAULT_FEE_RATE, change_to: str | None = None) -> Transaction:
    """A vetted pool's appeal: claim a prize for `image` as `digit`, the classifier's runner-up within the gap."""
    return claim(pool, prize, image, recipient, fee_rate, attestor=attestor, appeal=digit, change_to=change_to)


def reclaim(pool: PoolContract, prizes: Sequence[Utxo], owner_key: PrivateKey, to: str,
            fee_rate: int = DEFAULT_FEE_RATE) -> Transaction:
    """Owner path: take back any number of prizes in one transaction, everything less the fee to `to`."""
    if not prizes:
        raise ContractError("name at least one prize to reclaim")
    for prize in prizes:
        _check_prize(pool, prize)
    inputs = [_spend(prize, pool.owner_unlock(owner_key)) for prize in prizes]
    tx = Transaction(inputs, [TransactionOutput(P2PKH().lock(address_pkh(to)), 0)], version=TX_VERSION)
    fee, total = _fee(tx, fee_rate), sum(prize.satoshis for prize in prizes)
    if total <= fee:
        raise ContractError(f"the prizes hold {total} sats, not enough for the {fee}-sat fee")
    tx.outputs[0].satoshis = total - fee
    return tx.sign()


def pool_move(to: str, *, pool: PoolContract | None = None, count: int = 0,
              prizes: Sequence[tuple[PoolContract, Utxo]] = (), owner_key: PrivateKey | None = None,
              reserve: Utxo | None = None, reserve_key: PrivateKey | None = None, coins: Sequence[Utxo] = (),
              wallet_key: PrivateKey | None = None, add: int = 0, change_to: str | None = None,
              fee_rate: int = DEFAULT_FEE_RATE) -> Transaction:
    """One owner transaction of a pool bounty, which pays its own fee out of the pool's funds.

    It spends `prizes` (each with its pool's owner path), the owner's `reserve` (P2PKH, `reserve_key`) and `add`
    sats from P2PKH wallet `coins`; it creates `count` prizes of `pool` (outputs 0..count-1); what is left less
    the fee goes to `to` (the new reserve, or the wallet when the bounty is withdrawn); the wallet's change,
    exactly the coins less `add`, goes to `change_to` (last). Deploy, refill, top-up, redeploy and withdraw are
    all this one shape.
    """
    inputs = [_spend(prize, source.owner_unlock(_need(owner_key, "the owner key"))) for source, prize in prizes]
    for source, prize in prizes:
        _check_prize(source, prize)
    if reserve is not None:
        inputs.append(_spend(reserve, P2PKH().unlock(_need(reserve_key, "the reserve key"))))
    if coins:
        inputs += [_spend(coin, P2PKH().unlock(_need(wallet_key, "the wallet key"))) for coin in coins]
    if not inputs:
        raise ContractError("a pool transaction spends at least one prize, the reserve or a wallet coin")
    if count and pool is None:
        raise ContractError("name the pool whose prizes to create")
    change = sum(coin.satoshis for coin in coins) - add
    if add < 0 or change < 0:
        raise ContractError(f"the wallet coins hold {sum(c.satoshis for c in coins)} sats, which cannot add {add}")
    outputs = [TransactionOutput(pool.lock(), pool.prize_satoshis) for _ in range(count)] if pool else []
    rest = TransactionOutput(P2PKH().lock(address_pkh(to)), 0)
    tail = [TransactionOutput(P2PKH().lock(address_pkh(_need(change_to, "a change address"))), change)] \
        if change else []
    tx = Transaction(inputs, [*outputs, rest, *tail], version=TX_VERSION)
    funds = sum(i.satoshis for i in inputs) - change
    left = funds - sum(o.satoshis for o in outputs) - _fee(tx, fee_rate)
    if left < 1:  # nothing worth an output: the transaction without it pays what is left as its fee
        tx.outputs.remove(rest)
        left = funds - sum(o.satoshis for o in outputs) - _fee(tx, fee_rate)
        if left < 0 or not tx.outputs:
            raise ContractError(f"{funds} sats cannot create {count} prizes of "
                                f"{pool.prize_satoshis if pool else 0} sats and pay the fee")
    else:
        rest.satoshis = left
    return tx.sign()


def _need(value: T | None, what: str) -> T:
    if value is None:
        raise ContractError(f"this pool transaction needs {what}")
    return value


def _check_prize(pool: PoolContract, prize: Utxo) -> None:
    if prize.locking_script.serialize() != pool.lock().serialize():
        raise ContractError(f"output {prize.txid}:{prize.vout} is not a prize of this pool bounty")
