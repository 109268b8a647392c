"""The attestor's co-signature on a vetted bounty's spends.

A vetted bounty pays only when its attestor key signs the whole spending transaction with
SIGHASH_ALL|FORKID, so the signature fixes payee, payout, successor and fee. The key stays with the
caller: the builders take an `Attestor`, either the `PrivateKey` itself or a callable that returns
the signature for input `index` of a finished transaction (DER followed by the sighash byte 0x41),
for a signer that keeps the key elsewhere. Neither is ever logged or put in an error message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from bsv import PrivateKey, PublicKey, Transaction

from contracts.errors import ContractError
from contracts.pushtx import SIGHASH_ALL_FORKID

Attestor: TypeAlias = "PrivateKey | Callable[[Transaction, int], bytes]"
MAX_SIGNATURE_BYTES = 73  # low-S DER is at most 72 bytes (r may need a 33rd byte), then the sighash byte


def sign_input(key: PrivateKey, tx: Transaction, index: int) -> bytes:
    """The signature a vetted spend pushes: DER over input `index`'s sighash preimage, then 0x41."""
    return bytes(key.sign(tx.preimage(index))) + bytes([SIGHASH_ALL_FORKID])


def attest(attestor: Attestor, attestor_pubkey: bytes, tx: Transaction, index: int) -> bytes:
    """The attestor's signature for input `index` of the finished `tx`, checked against the bounty's key,
    so a wrong key or a signer that signed something else fails here with a sentence, not on chain."""
    if isinstance(attestor, PrivateKey):
        if attestor.public_key().serialize() != attestor_pubkey:
            raise ContractError("this key is not the bounty's attestor key")
        signature = sign_input(attestor, tx, index)
    else:
        signature = bytes(attestor(tx, index))
    if not signature_is_valid(attestor_pubkey, signature, tx, index):
        raise ContractError("the attestor's signature does not verify against the bounty's attestor key "
                            "with SIGHASH_ALL|FORKID over this transaction")
    return signature


def signature_is_valid(pubkey: bytes, signature: bytes, tx: Transaction, index: int) -> bool:
    """Whether `signature` (DER + sighash byte) is `pubkey`'s SIGHASH_ALL|FORKID signature of input `index`."""
    if not 9 <= len(signature) <= MAX_SIGNATURE_BYTES or signature[-1] != SIGHASH_ALL_FORKID:
        return False
    try:
        return bool(PublicKey(pubkey).verify(signature[:-1], tx.preimage(index)))
    except Exception:  # bsv raises ValueError and others for malformed DER
        return False
