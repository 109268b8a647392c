"""Prize-pool bounties: K independent prize outputs that share one locking script, and no covenant.

A chain bounty is one output that every submission spends and re-creates, so each paid image carries the
classifier twice. A pool bounty locks each payout (plus its fee allowance) in a prize output of its own;
claiming a prize spends only that output, and the unlocking script is the pixels (plus, vetted, the
attestor's signature and an appeal's claim). The classifier's bytes are paid once per prize, in the owner's
transaction that creates it; the claim is about 1 KB.

Open mode, locking script (after `<tag> OP_DROP`, which makes every bounty's script its own)::

    OP_IF                                   owner path; unlocking: <sig> OP_1
        <owner pubkey> OP_CHECKSIG          reclaim the prize, to anywhere
    OP_ELSE                                 claim; unlocking: <784 pixels> OP_0
        run the classifier on the pixels    -> margin, label
        label in the target set, margin >= minimum
    OP_ENDIF

Nothing binds an open claim's outputs: whoever presents an image the classifier accepts takes the prize
(its payout and its fee allowance), and anyone who sees a claim before it is mined can copy its pixels into a
claim of their own, or claim every live prize with the same image.

Vetted mode: the same owner path; every claim needs the attestor's signature over the whole transaction
(SIGHASH_ALL|FORKID, so it fixes the payee, the payout and the fee), and the appeal path is the chain shape's::

    OP_IF                                   owner path, as above
    OP_ELSE                                 claim:  <784 pixels> <sig> OP_0 OP_0
                                            appeal: <784 pixels> <claim> <sig> OP_1 OP_0
        the claim (appeals only) and the appeal flag to the alt stack
        <sig> ends with 0x41 (SIGHASH_ALL|FORKID); <attestor pubkey> OP_CHECKSIGVERIFY
        run the classifier on the pixels    -> runner-up, margin, label
        <appeal flag> OP_IF                 appeal: margin <= appeal gap, claim in the target set,
                                                    claim == runner-up
        OP_ELSE                             claim: label in the target set, margin >= minimum
        OP_ENDIF
    OP_ENDIF

The script holds neither the payout nor the maximum fee: a prize's value is its payout plus the fee
allowance (`BountyTerms.max_fee`: see contracts.fees), fixed when the owner creates it. With no covenant a
leaked attestor key takes live prizes (one per spend, with any image the classifier accepts) but never the
owner's reserve, which is an ordinary output of the owner. A signature never covers the unlocking script, so
in either mode whoever relays a claim can swap its pixels for another image the script accepts without
changing who is paid: read the image from the transaction that was mined.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from bsv import PrivateKey, Script, Transaction
from bsv.constants import OpCode
from bsv.script.type import to_unlock_script_template
from bsv.script.unlocking_template import UnlockingScriptTemplate

from contracts.attestor import MAX_SIGNATURE_BYTES, Attestor, attest
from contracts.bounty import (
    BountyTerms,
    attestor_check,
    check_claim,
    open_verdict,
    owner_unlock,
    park_appeal,
    push_values,
    vetted_verdict,
)
from contracts.classifier import CLASSES, ClassifierScript, as_classifier, pixel_pushes
from contracts.errors import ContractError
from contracts.script import AnnotatedScript, Note, ScriptBuilder, encode_item, push_only_script
from model.reference import PIXELS, IntegerModel

OP = OpCode
SHAPE = "pool"


class PoolContract:
    """A pool bounty's prize script (one script for all its prizes) and the unlocking templates of its paths.

    The terms are a chain bounty's (`BountyTerms`); here `payout + max_fee` is the value of each prize and
    neither number is in the script.
    """

    def __init__(self, model: IntegerModel | ClassifierScript, terms: BountyTerms) -> None:
        # compiled once per model, variant and process; the vetted variant reports the runner-up
        compiled = as_classifier(model, runner_up=terms.vetted)
        self.model = compiled.model
        self.terms = terms
        self.classifier = compiled.with_extra_items(0)

    @property
    def prize_satoshis(self) -> int:
        """The value of each prize output: the payout and the claim's fee allowance."""
        return self.terms.payout + self.terms.max_fee

    @cached_property
    def script(self) -> AnnotatedScript:
        t = self.terms
        head = ScriptBuilder()
        if t.tag:
            head.add(Note(f"bounty #{t.tag}"), t.tag, OP.OP_DROP)
        head.add(OP.OP_IF, Note("owner path: reclaim the prize"), t.owner_pubkey, OP.OP_CHECKSIG, OP.OP_ELSE)
        tail = ScriptBuilder()
        if t.vetted:
            head.extend(park_appeal(claim_depth=2))
            head.extend(attestor_check(t))
            tail.add(Note("stack: runner-up margin label")).extend(vetted_verdict(t))
        else:
            tail.extend(open_verdict(t))
        tail.add(OP.OP_ENDIF)
        return head.note("claim path: the pixels").build() + self.classifier.code + tail.build()

    def lock(self) -> Script:
        return self.script.script

    @property
    def locking_script_bytes(self) -> int:
        return len(self.script)

    def claim_unlock(self, image: np.ndarray, attestor: Attestor | None = None,
                     appeal: int | None = None) -> UnlockingScriptTemplate:
        """Unlocking template for a claim; `sign(tx, i)` pushes the pixels (vetted: and the attestor's signature).

        A vetted bounty needs the `attestor` (its key, or a signer: see contracts.attestor), which signs the
        transaction as it stands when `sign` runs: build it completely first. `appeal` is the digit an appeal
        claims (vetted only): the classifier's runner-up, paid under that label.
        """
        t = self.terms
        check_claim(t, attestor, appeal)
        pushed = push_only_script(pixel_pushes(self.classifier, image)).serialize()  # encoded once, used twice
        claim: list[int | bytes] = [] if appeal is None else [appeal]

        def sign(tx: Transaction, index: int) -> Script:
            if attestor is None:
                return Script(pushed + encode_item(0))
            assert t.attestor_pubkey is not None  # checked by BountyTerms
            signature = attest(attestor, t.attestor_pubkey, tx, index)
            return Script(pushed + push_only_script([*claim, signature, 1 if claim else 0, 0]).serialize())

        # the pixels, the claim and the selector are known now; vetted: + the longest signature and the flag
        estimate = len(pushed) + len(push_only_script([*claim, 0]).serialize())
        if t.vetted:
            estimate += len(encode_item(b"\0" * MAX_SIGNATURE_BYTES)) + 1
        return to_unlock_script_template(sign, lambda: estimate)

    def owner_unlock(self, owner_key: PrivateKey) -> UnlockingScriptTemplate:
        """Unlocking template for the owner path: a signature over the whole transaction."""
        return owner_unlock(self.terms, owner_key)

    def read_claim(self, unlocking: Script) -> PrizeClaim | None:
        """What a claim's unlocking script says: the image (and an appeal's digit). None for an owner spend.

        Works on any spend of a prize, made through the service or directly on chain by anyone; the payee is
        whoever the claim's outputs pay.
        """
        items = push_values(unlocking)
        appeal: int | bytes | None = None
        if not self.terms.vetted:
            if len(items) != PIXELS + 1 or items[-1] != 0:
                return None
            pixels = items[:-1]
        elif len(items) == PIXELS + 3 and items[-2:] == [0, 0]:
            pixels = items[:-3]
        elif len(items) == PIXELS + 4 and items[-2:] == [1, 0]:
            pixels, appeal = items[:-4], items[-4]
            if not isinstance(appeal, int) or not 0 <= appeal < CLASSES:
                raise ContractError("the unlocking script's appeal does not claim a digit 0..9")
        else:
            return None
        if not all(isinstance(p, int) and 0 <= p <= 255 for p in pixels):
            raise ContractError("the unlocking script's pixels are not numbers 0..255")
        image = np.zeros(PIXELS, dtype=np.uint8)
        image[list(self.classifier.order)] = pixels
        return PrizeClaim(image=image, appeal=appeal if isinstance(appeal, int) else None)


@dataclass(frozen=True)
class PrizeClaim:
    image: np.ndarray  # 784 uint8 pixels, row-major
    appeal: int | None = None  # the digit an appeal claims (vetted); None: paid as the classifier's label
