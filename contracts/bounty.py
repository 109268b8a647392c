"""The bounty contract: the on-chain classifier plus an OP_PUSH_TX covenant.

Locking script (after `<tag> OP_DROP`, which makes every bounty's script its own)::

    OP_IF                                   owner path; unlocking: <sig> OP_1
        <owner pubkey> OP_CHECKSIG          withdraw anywhere, or migrate into a new contract
    OP_ELSE                                 submission path; unlocking: <784 pixels> <pkh> <N> <preimage> OP_0
        check the preimage (OP_PUSH_TX), cut out scriptCode, value and hashOutputs
        run the classifier on the pixels    -> margin, label
        label in the target set, margin >= minimum
        fee = value - payout - N, 0 <= fee <= maximum fee
        outputs = [N sats to this same script, if N > 0] + [payout sats to P2PKH(pkh)]
        hash256(outputs) == hashOutputs
    OP_ENDIF

The successor's script is copied from the preimage's scriptCode, so it is byte for byte the
script being spent. A submission therefore carries the classifier twice (once inside the pushed
preimage, once as the successor output); nothing else repeats it.

Exhaustion: the spender chooses N, the successor's value. While the balance exceeds
payout + maximum fee the successor must exist (fee <= maximum fee forces N > 0). Once
value - payout <= maximum fee, the submission may use N = 0: it pays the payout, the rest
is its fee, and the bounty ends. A balance below the payout refuses every submission; the
owner withdraws what is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from bsv import PrivateKey, Script, Transaction
from bsv.constants import OpCode
from bsv.script.type import to_unlock_script_template
from bsv.script.unlocking_template import UnlockingScriptTemplate

from contracts.classifier import ClassifierScript, as_classifier, pixel_pushes
from contracts.errors import ContractError
from contracts.pushtx import SIGHASH_ALL_FORKID, check_preimage
from contracts.script import (
    AnnotatedScript,
    Item,
    Note,
    ScriptBuilder,
    decode_number,
    encode_item,
    is_minimal_number,
    push_only_script,
)
from model.reference import PIXELS, IntegerModel

OP = OpCode
PKH_BYTES = 20
# BIP143 preimage layout: 104 bytes before the scriptCode, 52 after it
PREIMAGE_HEAD = 4 + 32 + 32 + 36
PREIMAGE_TAIL = 8 + 4 + 32 + 4 + 4
COVENANT_ITEMS = 5  # pkh, N, scriptCode, value, hashOutputs ride the alt stack past the classifier


@dataclass(frozen=True)
class BountyTerms:
    """What a bounty pays for; fixed when the contract is created."""

    digits: tuple[int, ...]
    payout: int
    min_margin: int
    max_fee: int
    owner_pubkey: bytes
    tag: int = 0  # a bounty's own number: two bounties with equal terms still get different scripts

    def __post_init__(self) -> None:
        if not self.digits or len(set(self.digits)) != len(self.digits) or not all(0 <= d <= 9 for d in self.digits):
            raise ContractError(f"target digits must be distinct digits 0..9, got {self.digits}")
        if self.payout < 1:
            raise ContractError(f"the payout must be at least 1 satoshi, got {self.payout}")
        if self.min_margin < 0 or self.max_fee < 0:
            raise ContractError("the minimum margin and the maximum fee cannot be negative")
        if len(self.owner_pubkey) != 33 or self.owner_pubkey[0] not in (2, 3):
            raise ContractError("the owner key must be a 33-byte compressed public key")
        if self.tag < 0:
            raise ContractError("the bounty tag cannot be negative")


class BountyContract:
    """A bounty's locking script and the unlocking templates for its two paths."""

    def __init__(self, model: IntegerModel | ClassifierScript, terms: BountyTerms) -> None:
        compiled = as_classifier(model)  # compiled once per model and process, then re-headed
        self.model = compiled.model
        self.terms = terms
        self.classifier = compiled.with_extra_items(COVENANT_ITEMS)

    @cached_property
    def script(self) -> AnnotatedScript:
        t = self.terms
        builder = ScriptBuilder()
        if t.tag:
            builder.add(Note(f"bounty #{t.tag}"), t.tag, OP.OP_DROP)
        head = builder.add(
            OP.OP_IF, Note("owner path"), t.owner_pubkey, OP.OP_CHECKSIG,
            OP.OP_ELSE, Note("submission path: check the pushed preimage"), *check_preimage(),
            Note("cut out scriptCode (with its length), value and hashOutputs"),
            PREIMAGE_HEAD, OP.OP_SPLIT, OP.OP_NIP, OP.OP_SIZE, PREIMAGE_TAIL, OP.OP_SUB, OP.OP_SPLIT,
            8, OP.OP_SPLIT, 4, OP.OP_SPLIT, OP.OP_NIP, 32, OP.OP_SPLIT, OP.OP_DROP,
        ).build()
        tail = ScriptBuilder().note("stack: margin label")
        tail.extend(_label_in(t.digits))
        if t.min_margin:
            tail.add(Note(f"margin >= {t.min_margin}"), t.min_margin, OP.OP_GREATERTHANOREQUAL, OP.OP_VERIFY)
        else:
            tail.add(OP.OP_DROP)
        tail.add(
            Note("stack: pkh N scriptCode value hashOutputs"), *[OP.OP_FROMALTSTACK] * COVENANT_ITEMS,
            Note(f"fee = value - {t.payout} - N must be 0..{t.max_fee}"),
            OP.OP_SWAP, OP.OP_BIN2NUM, 3, OP.OP_PICK, OP.OP_SUB, t.payout, OP.OP_SUB,
            0, t.max_fee + 1, OP.OP_WITHIN, OP.OP_VERIFY,
            Note("payout output: value, then P2PKH(pkh)"),
            3, OP.OP_ROLL, OP.OP_SIZE, PKH_BYTES, OP.OP_EQUALVERIFY,
            t.payout.to_bytes(8, "little") + bytes([25, 0x76, 0xA9, PKH_BYTES]), OP.OP_SWAP, OP.OP_CAT,
            bytes([0x88, 0xAC]), OP.OP_CAT,
            Note("successor output (when N > 0): N, then this very script"),
            3, OP.OP_ROLL, OP.OP_DUP, OP.OP_0NOTEQUAL,
            OP.OP_IF, 8, OP.OP_NUM2BIN, 3, OP.OP_ROLL, OP.OP_CAT, OP.OP_SWAP, OP.OP_CAT,
            OP.OP_ELSE, OP.OP_DROP, OP.OP_ROT, OP.OP_DROP, OP.OP_ENDIF,
            Note("the outputs must be exactly these"), OP.OP_HASH256, OP.OP_EQUAL,
            OP.OP_ENDIF,
        )
        return head + self.classifier.code + tail.build()

    def lock(self) -> Script:
        return self.script.script

    @property
    def locking_script_bytes(self) -> int:
        return len(self.script)

    def submission_unlock(self, image: np.ndarray, recipient_pkh: bytes, successor_satoshis: int
                          ) -> UnlockingScriptTemplate:
        """Unlocking template for a submission; `sign(tx, i)` pushes the real preimage of input i."""
        if len(recipient_pkh) != PKH_BYTES:
            raise ContractError("the recipient must be a 20-byte public key hash")
        pixels = pixel_pushes(self.classifier, image)

        def sign(tx: Transaction, index: int) -> Script:
            return push_only_script([*pixels, recipient_pkh, successor_satoshis, tx.preimage(index), 0])

        # pixels + pkh + N + preimage (the whole script plus 156 bytes) + selector, with push headers
        estimate = len(push_only_script([*pixels, recipient_pkh, successor_satoshis]).serialize()) + 1
        estimate += len(encode_item(b"\0" * (self.locking_script_bytes + 9 + PREIMAGE_HEAD + PREIMAGE_TAIL)))
        return to_unlock_script_template(sign, lambda: estimate)

    def read_submission(self, unlocking: Script) -> SubmissionClaim | None:
        """What a submission's unlocking script says: the image, recipient and successor value.

        None for an owner spend. Works on any spend of this contract, made through our service or
        directly on-chain by anyone, so the watcher can record every one.
        """
        items = [_chunk_value(chunk) for chunk in unlocking.chunks]
        if len(items) != PIXELS + 4 or items[-1] != 0:
            return None
        *pixels, pkh, successor, _preimage, _selector = items
        if not all(isinstance(p, int) and 0 <= p <= 255 for p in pixels):
            raise ContractError("the unlocking script's pixels are not numbers 0..255")
        if not isinstance(pkh, bytes) or len(pkh) != PKH_BYTES or not isinstance(successor, int):
            raise ContractError("the unlocking script's recipient or successor value is malformed")
        image = np.zeros(PIXELS, dtype=np.uint8)
        image[list(self.classifier.order)] = pixels
        return SubmissionClaim(image=image, recipient_pkh=pkh, successor_satoshis=successor)

    def owner_unlock(self, owner_key: PrivateKey) -> UnlockingScriptTemplate:
        """Unlocking template for the owner path: a signature over the whole transaction."""
        if owner_key.public_key().serialize() != self.terms.owner_pubkey:
            raise ContractError("this key is not the bounty owner's")

        def sign(tx: Transaction, index: int) -> Script:
            signature = owner_key.sign(tx.preimage(index)) + bytes([SIGHASH_ALL_FORKID])
            return push_only_script([signature, 1])

        return to_unlock_script_template(sign, lambda: 75)


@dataclass(frozen=True)
class SubmissionClaim:
    image: np.ndarray  # 784 uint8 pixels, row-major
    recipient_pkh: bytes
    successor_satoshis: int


def _chunk_value(chunk: Any) -> int | bytes:
    """A pushed item as a script number when it is one (OP_0..OP_16, OP_1NEGATE, short data), else bytes."""
    op = chunk.op[0] if isinstance(chunk.op, bytes) else int(chunk.op)
    if chunk.data is None:
        if op == 0:
            return 0
        if op == 0x4F:
            return -1
        if 0x51 <= op <= 0x60:
            return op - 0x50
        return b""
    data = bytes(chunk.data)
    return decode_number(data) if len(data) <= 8 and is_minimal_number(data) else data


def _label_in(digits: tuple[int, ...]) -> list[Item]:
    if len(digits) == 1:
        return [Note(f"label == {digits[0]}"), digits[0], OP.OP_NUMEQUALVERIFY]
    mask = bytes(1 if d in digits else 0 for d in range(10))
    return [Note(f"label in {sorted(digits)}: byte `label` of a 10-byte mask is 01"),
            mask, OP.OP_SWAP, OP.OP_SPLIT, OP.OP_NIP, 1, OP.OP_SPLIT, OP.OP_DROP, 1, OP.OP_EQUALVERIFY]

