"""The bounty contract: the on-chain classifier plus an OP_PUSH_TX covenant, in two modes.

Open mode, locking script (after `<tag> OP_DROP`, which makes every bounty's script its own)::

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

Vetted mode: the same owner path and covenant; the classifier also leaves its runner-up's label, and
every non-owner spend needs the attestor's signature over the whole transaction::

    OP_IF                                   owner path, as above
    OP_ELSE                                 submission: <784 pixels> <pkh> <N> <sig> <preimage> OP_0 OP_0
                                            appeal:     <784 pixels> <pkh> <N> <claim> <sig> <preimage> OP_1 OP_0
        the claim (appeals only) and the appeal flag to the alt stack
        check the preimage, cut it as above
        <sig> ends with 0x41 (SIGHASH_ALL|FORKID); <attestor pubkey> OP_CHECKSIGVERIFY
        run the classifier on the pixels    -> runner-up, margin, label
        the covenant, as above (verified; it reads only the five items above these three)
        <appeal flag> OP_IF                 appeal: margin <= appeal gap, claim in the target set,
                                                    claim == runner-up
        OP_ELSE                             submission: label in the target set, margin >= minimum
        OP_ENDIF
    OP_ENDIF

The attestor signs after the spender has chosen everything (nLockTime included), so nobody can
swap the payee of a broadcast spend; and with the covenant still bounding payout, successor and
fee, a leaked attestor key pays payouts one spend at a time and never takes the balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Literal

import numpy as np
from bsv import PrivateKey, Script, Transaction
from bsv.constants import OpCode
from bsv.native import NATIVE_MODULE as _native
from bsv.script.type import to_unlock_script_template
from bsv.script.unlocking_template import UnlockingScriptTemplate

from contracts.attestor import MAX_SIGNATURE_BYTES, Attestor, attest
from contracts.classifier import CLASSES, ClassifierScript, as_classifier, pixel_pushes
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
Mode = Literal["open", "vetted"]
OPEN: Mode = "open"
VETTED: Mode = "vetted"


@dataclass(frozen=True)
class BountyTerms:
    """What a bounty pays for; fixed when the contract is created."""

    digits: tuple[int, ...]
    payout: int
    min_margin: int
    max_fee: int
    owner_pubkey: bytes
    tag: int = 0  # a bounty's own number: two bounties with equal terms still get different scripts
    mode: Mode = OPEN
    attestor_pubkey: bytes | None = None  # vetted only: the key whose signature every non-owner spend needs
    appeal_gap: int = 0  # vetted only: an appeal's digit must be the runner-up within this many logit units

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
        if self.mode == OPEN:
            if self.attestor_pubkey is not None or self.appeal_gap:
                raise ContractError("an open bounty has no attestor key and no appeal gap")
        elif self.mode == VETTED:
            key = self.attestor_pubkey
            if key is None or len(key) != 33 or key[0] not in (2, 3):
                raise ContractError("a vetted bounty needs its attestor's 33-byte compressed public key")
            if key == self.owner_pubkey:
                raise ContractError("the attestor key must not be the owner key")
            if self.appeal_gap < 0:
                raise ContractError(f"the appeal gap cannot be negative, got {self.appeal_gap}")
        else:
            raise ContractError(f"the mode must be {OPEN!r} or {VETTED!r}, got {self.mode!r}")

    @property
    def vetted(self) -> bool:
        return self.mode == VETTED


def check_claim(t: BountyTerms, attestor: Any, appeal: int | None) -> None:
    """What a claim (a chain submission or a pool prize's) must bring: vetted bounties the attestor and at most
    an appeal for one of their digits, open ones neither."""
    if not t.vetted and (attestor is not None or appeal is not None):
        raise ContractError("an open bounty takes no attestor signature and no appeal")
    if t.vetted and attestor is None:
        raise ContractError("a vetted bounty pays only with its attestor's signature")
    if appeal is not None and appeal not in t.digits:
        raise ContractError(f"an appeal must claim one of the bounty's digits {list(t.digits)}, not {appeal}")


def owner_unlock(t: BountyTerms, owner_key: PrivateKey) -> UnlockingScriptTemplate:
    """The owner path's unlocking template, the same for every shape: a signature over the whole transaction."""
    if owner_key.public_key().serialize() != t.owner_pubkey:
        raise ContractError("this key is not the bounty owner's")

    def sign(tx: Transaction, index: int) -> Script:
        signature = owner_key.sign(tx.preimage(index)) + bytes([SIGHASH_ALL_FORKID])
        return push_only_script([signature, 1])

    return to_unlock_script_template(sign, lambda: 75)


class BountyContract:
    """A bounty's locking script and the unlocking templates for its two paths."""

    def __init__(self, model: IntegerModel | ClassifierScript, terms: BountyTerms) -> None:
        # compiled once per model, variant and process, then re-headed; the vetted variant reports the runner-up
        compiled = as_classifier(model, runner_up=terms.vetted)
        self.model = compiled.model
        self.terms = terms
        self.classifier = compiled.with_extra_items(COVENANT_ITEMS)

    @cached_property
    def script(self) -> AnnotatedScript:
        t = self.terms
        builder = ScriptBuilder()
        if t.tag:
            builder.add(Note(f"bounty #{t.tag}"), t.tag, OP.OP_DROP)
        builder.add(OP.OP_IF, Note("owner path"), t.owner_pubkey, OP.OP_CHECKSIG, OP.OP_ELSE)
        if t.vetted:
            builder.extend(park_appeal(claim_depth=3))
        builder.add(
            Note("submission path: check the pushed preimage"), *check_preimage(),
            Note("cut out scriptCode (with its length), value and hashOutputs"),
            PREIMAGE_HEAD, OP.OP_SPLIT, OP.OP_NIP, OP.OP_SIZE, PREIMAGE_TAIL, OP.OP_SUB, OP.OP_SPLIT,
            8, OP.OP_SPLIT, 4, OP.OP_SPLIT, OP.OP_NIP, 32, OP.OP_SPLIT, OP.OP_DROP,
        )
        if t.vetted:
            builder.add(3, OP.OP_ROLL).extend(attestor_check(t))
        head = builder.build()
        tail = ScriptBuilder()
        if not t.vetted:
            tail.extend(_submission_checks(t))
            tail.extend(_covenant(t, OP.OP_EQUAL))
            return head + self.classifier.code + tail.add(OP.OP_ENDIF).build()
        tail.add(Note("stack: runner-up margin label"))
        tail.extend(_covenant(t, OP.OP_EQUALVERIFY))
        tail.extend(vetted_verdict(t))
        tail.add(OP.OP_ENDIF)
        return head + self.classifier.code + tail.build()

    def lock(self) -> Script:
        return self.script.script

    @property
    def locking_script_bytes(self) -> int:
        return len(self.script)

    def submission_unlock(self, image: np.ndarray, recipient_pkh: bytes, successor_satoshis: int,
                          attestor: Attestor | None = None, appeal: int | None = None) -> UnlockingScriptTemplate:
        """Unlocking template for a submission; `sign(tx, i)` pushes the real preimage of input i.

        A vetted bounty needs the `attestor` (its key, or a signer: see contracts.attestor), which signs
        the transaction as it stands when `sign` runs: build it completely first. `appeal` is the digit
        an appeal claims (vetted only): the classifier's runner-up, paid under that label.
        """
        if len(recipient_pkh) != PKH_BYTES:
            raise ContractError("the recipient must be a 20-byte public key hash")
        t = self.terms
        check_claim(t, attestor, appeal)
        pixels = pixel_pushes(self.classifier, image)
        claim: list[int | bytes] = [] if appeal is None else [appeal]

        def sign(tx: Transaction, index: int) -> Script:
            if attestor is None:
                return push_only_script([*pixels, recipient_pkh, successor_satoshis, tx.preimage(index), 0])
            assert t.attestor_pubkey is not None  # checked by BountyTerms
            signature = attest(attestor, t.attestor_pubkey, tx, index)
            return push_only_script([*pixels, recipient_pkh, successor_satoshis, *claim, signature,
                                     tx.preimage(index), 1 if claim else 0, 0])

        # pixels + pkh + N + preimage (the whole script plus 156 bytes) + selector, with push headers;
        # vetted: + the claim, the longest signature and the appeal flag
        estimate = len(push_only_script([*pixels, recipient_pkh, successor_satoshis, *claim]).serialize()) + 1
        estimate += len(encode_item(b"\0" * (self.locking_script_bytes + 9 + PREIMAGE_HEAD + PREIMAGE_TAIL)))
        if t.vetted:
            estimate += len(encode_item(b"\0" * MAX_SIGNATURE_BYTES)) + 1
        return to_unlock_script_template(sign, lambda: estimate)

    def read_submission(self, unlocking: Script) -> SubmissionClaim | None:
        """What a submission's unlocking script says: the image, recipient, successor value (and appeal).

        None for an owner spend. Works on any spend of this contract, made through our service or
        directly on-chain by anyone, so the watcher can record every one.
        """
        items = push_values(unlocking)
        appeal: int | bytes | None = None
        if not self.terms.vetted:
            if len(items) != PIXELS + 4 or items[-1] != 0:
                return None
            *pixels, pkh, successor, _preimage, _selector = items
        elif len(items) == PIXELS + 6 and items[-2:] == [0, 0]:
            *pixels, pkh, successor, _signature, _preimage, _appeal, _selector = items
        elif len(items) == PIXELS + 7 and items[-2:] == [1, 0]:
            *pixels, pkh, successor, appeal, _signature, _preimage, _appeal, _selector = items
            if not isinstance(appeal, int) or not 0 <= appeal < CLASSES:
                raise ContractError("the unlocking script's appeal does not claim a digit 0..9")
        else:
            return None
        if not all(isinstance(p, int) and 0 <= p <= 255 for p in pixels):
            raise ContractError("the unlocking script's pixels are not numbers 0..255")
        if not isinstance(pkh, bytes) or len(pkh) != PKH_BYTES or not isinstance(successor, int):
            raise ContractError("the unlocking script's recipient or successor value is malformed")
        image = np.zeros(PIXELS, dtype=np.uint8)
        image[list(self.classifier.order)] = pixels
        return SubmissionClaim(image=image, recipient_pkh=pkh, successor_satoshis=successor,
                               appeal=appeal if isinstance(appeal, int) else None)

    def owner_unlock(self, owner_key: PrivateKey) -> UnlockingScriptTemplate:
        """Unlocking template for the owner path: a signature over the whole transaction."""
        return owner_unlock(self.terms, owner_key)


@dataclass(frozen=True)
class SubmissionClaim:
    image: np.ndarray  # 784 uint8 pixels, row-major
    recipient_pkh: bytes
    successor_satoshis: int
    appeal: int | None = None  # the digit an appeal claims (vetted bounties); None: paid as the classifier's label


def push_values(unlocking: Script) -> list[int | bytes]:
    """What an unlocking script pushes, each item as `chunk_value` reads it. A script of pushes only is parsed
    by bsv-sdk's C parser when that reads it back byte for byte (a claim's 785 pushes: well under a
    millisecond, against about 10 ms for `Script.chunks`); anything else goes through `Script.chunks`."""
    raw = unlocking.serialize()
    try:
        parsed = _native.parse_script_chunks(raw)
        if all(op <= 0x60 for op, _ in parsed) and _native.serialize_script_chunks(parsed) == raw:
            return [_push_value(op, data) for op, data in parsed]
    except (AttributeError, TypeError, ValueError):  # no C extension, or a script it cannot parse
        pass
    return [chunk_value(chunk) for chunk in unlocking.chunks]


def chunk_value(chunk: Any) -> int | bytes:
    """A pushed item as a script number when it is one (OP_0..OP_16, OP_1NEGATE, short data), else bytes."""
    op = chunk.op[0] if isinstance(chunk.op, bytes) else int(chunk.op)
    return _push_value(op, None if chunk.data is None else bytes(chunk.data))


def _push_value(op: int, data: bytes | None) -> int | bytes:
    if data is None:
        if op == 0:
            return 0
        if op == 0x4F:
            return -1
        if 0x51 <= op <= 0x60:
            return op - 0x50
        return b""
    return _short_value(data) if len(data) <= 8 else data


@lru_cache(maxsize=1024)  # a claim's pushes repeat: its pixels take at most 256 values
def _short_value(data: bytes) -> int | bytes:
    return decode_number(data) if is_minimal_number(data) else data


def _covenant(t: BountyTerms, last: OpCode) -> list[Item]:
    """[pkh N scriptCode value hashOutputs] -> [hashOutputs == hash256(expected outputs)], `last` comparing.

    Only the top five items are read, so whatever lies below them stays as it is."""
    return [
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
        Note("the outputs must be exactly these"), OP.OP_HASH256, last,
    ]


def _submission_checks(t: BountyTerms) -> list[Item]:
    """[margin label] -> []: the label is a target digit, the margin reaches the minimum."""
    items: list[Item] = [Note("stack: margin label"), *_label_in(t.digits)]
    if t.min_margin:
        return [*items, Note(f"margin >= {t.min_margin}"), t.min_margin, OP.OP_GREATERTHANOREQUAL, OP.OP_VERIFY]
    return [*items, OP.OP_DROP]


def park_appeal(claim_depth: int) -> list[Item]:
    """[.. claim? .. flag] -> [.. ..]: the appeal flag, and under it the claim when the flag is 1 (found
    `claim_depth` items down once the flag is duplicated), wait on the alt stack while the classifier runs."""
    return [Note("the claim (appeals only) and the appeal flag wait on the alt stack"),
            OP.OP_DUP, OP.OP_IF, claim_depth, OP.OP_ROLL, OP.OP_TOALTSTACK, OP.OP_ENDIF, OP.OP_TOALTSTACK]


def attestor_check(t: BountyTerms) -> list[Item]:
    """[.. sig] -> [..]: `sig` is the attestor's signature of this whole transaction with SIGHASH_ALL|FORKID."""
    assert t.attestor_pubkey is not None  # checked by BountyTerms
    return [Note("the attestor signed this whole transaction with SIGHASH_ALL|FORKID"),
            OP.OP_DUP, OP.OP_SIZE, OP.OP_1SUB, OP.OP_SPLIT, OP.OP_NIP,
            bytes([SIGHASH_ALL_FORKID]), OP.OP_EQUALVERIFY, t.attestor_pubkey, OP.OP_CHECKSIGVERIFY]


def vetted_verdict(t: BountyTerms) -> list[Item]:
    """[runner_up margin label], the appeal flag (and an appeal's claim) on the alt stack -> [verdict].

    Appeal: margin <= the appeal gap, the claim is a target digit and the runner-up. Otherwise: the label is
    a target digit and the margin reaches the minimum."""
    items: list[Item] = [
        Note("the appeal flag from the alt stack"), OP.OP_FROMALTSTACK, OP.OP_IF,
        Note(f"appeal: margin <= {t.appeal_gap}, the claim is a target digit and the runner-up"),
        OP.OP_DROP, t.appeal_gap, OP.OP_LESSTHANOREQUAL, OP.OP_VERIFY, OP.OP_FROMALTSTACK, OP.OP_DUP,
        *_label_in(t.digits), OP.OP_NUMEQUAL, OP.OP_ELSE, Note("submission: the label is a target digit"),
        *_label_in(t.digits)]
    if t.min_margin:
        items += [Note(f"margin >= {t.min_margin}"), t.min_margin, OP.OP_GREATERTHANOREQUAL, OP.OP_NIP]
    else:
        items += [OP.OP_2DROP, OP.OP_1]
    return [*items, OP.OP_ENDIF]


def open_verdict(t: BountyTerms) -> list[Item]:
    """[margin label] -> [verdict]: the label is a target digit and the margin reaches the minimum."""
    items: list[Item] = [Note("stack: margin label"), *_label_in(t.digits)]
    if t.min_margin:
        return [*items, Note(f"margin >= {t.min_margin}"), t.min_margin, OP.OP_GREATERTHANOREQUAL]
    return [*items, OP.OP_DROP, OP.OP_1]


def _label_in(digits: tuple[int, ...]) -> list[Item]:
    if len(digits) == 1:
        return [Note(f"label == {digits[0]}"), digits[0], OP.OP_NUMEQUALVERIFY]
    mask = bytes(1 if d in digits else 0 for d in range(10))
    return [Note(f"label in {sorted(digits)}: byte `label` of a 10-byte mask is 01"),
            mask, OP.OP_SWAP, OP.OP_SPLIT, OP.OP_NIP, 1, OP.OP_SPLIT, OP.OP_DROP, 1, OP.OP_EQUALVERIFY]

