"""Run scripts through bsv-sdk's real interpreter, inside real version-1 transactions.

``verify_spend`` builds a source transaction whose output carries the locking script and a
transaction spending it with the unlocking script, then validates that input with
``bsv.script.spend.Spend``: the same rules a node applies to a version-1 spend (push-only
unlocking script, minimal encodings, clean stack). The interpreter's ``RuntimeError`` becomes
``model.errors.ScriptError`` carrying the interpreter's reason.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from bsv.native import NATIVE_MODULE as _native
from bsv.script.script import Script
from bsv.script.spend import Spend
from bsv.transaction import Transaction
from bsv.transaction_input import TransactionInput
from bsv.transaction_output import TransactionOutput

from contracts.classifier import ClassifierScript, as_classifier, unlocking_claim, verify_label_script
from contracts.errors import ScriptError
from contracts.script import AnnotatedScript
from model.reference import IntegerModel, as_pixels, classify

log = logging.getLogger(__name__)

TX_VERSION = 1  # version 1 keeps the strict rules (push-only unlocking, minimal pushes, clean stack)
SOURCE_SATOSHIS = 10_000
# Any standard output will do for the spending transaction: a bare OP_TRUE keeps it small.
_SPEND_OUTPUT = Script(b"\x51")


def _as_script(script: Script | AnnotatedScript) -> Script:
    return script.script if isinstance(script, AnnotatedScript) else script


def spending_transaction(locking: Script, unlocking: Script, satoshis: int = SOURCE_SATOSHIS) -> Transaction:
    """A version-1 transaction whose only input spends output 0 of a source transaction locked by ``locking``."""
    funding = Transaction(
        [TransactionInput(source_txid="00" * 32, source_output_index=0, unlocking_script=Script(b""))],
        [TransactionOutput(locking, satoshis)],
        version=TX_VERSION,
    )
    spend_input = TransactionInput(source_transaction=funding, source_output_index=0, unlocking_script=unlocking)
    return Transaction([spend_input], [TransactionOutput(_SPEND_OUTPUT, satoshis - 1_000)], version=TX_VERSION)


def verify_spend(locking: Script | AnnotatedScript, unlocking: Script) -> None:
    """Validate ``unlocking`` against ``locking`` in a real transaction; raise ScriptError when it fails."""
    validate_input(spending_transaction(_as_script(locking), unlocking), 0)


def _reason(exc: RuntimeError) -> str:
    """The interpreter's own first line, without its "Script evaluation error:" prefix and context."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.removeprefix("Script evaluation error:").strip()


def script_accepts(locking: Script | AnnotatedScript, unlocking: Script) -> bool:
    try:
        verify_spend(locking, unlocking)
    except ScriptError:
        return False
    return True


def script_label(classifier: ClassifierScript, image: np.ndarray) -> int | None:
    """The label the script computes, found by claiming each label in turn (None if none validates)."""
    locking = verify_label_script(classifier, check_margin=False)
    for label in range(10):
        if script_accepts(locking, unlocking_claim(classifier, image, label)):
            return label
    return None


def verify_images(
    model: IntegerModel | ClassifierScript,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run every image through the script and compare with the numpy reference.

    Each image is spent against the label-and-margin variant claiming the reference's label and
    margin, so ``agree`` counts images where the script's label AND margin equal the reference's.
    ``script_accuracy`` compares the script's labels with ``labels`` (the true digits) when given.
    ``progress(done, total)`` is called after each image.
    """
    classifier = as_classifier(model)
    pixels = as_pixels(images)
    ref_labels, ref_margins = classify(classifier.model, pixels)
    locking = verify_label_script(classifier, check_margin=True)
    agree = correct = 0
    elapsed = 0.0
    for n, (image, label, margin) in enumerate(zip(pixels, ref_labels, ref_margins, strict=True), start=1):
        unlocking = unlocking_claim(classifier, image, int(label), int(margin))
        started = time.perf_counter()
        accepted = script_accepts(locking, unlocking)
        elapsed += time.perf_counter() - started
        script_label_value = int(label) if accepted else script_label(classifier, image)
        if accepted:
            agree += 1
        else:
            log.warning("image %d: script disagrees with the reference (reference %d/%d, script label %s)",
                        n - 1, label, margin, script_label_value)
        if labels is not None and script_label_value == int(labels[n - 1]):
            correct += 1
        if progress is not None:
            progress(n, len(pixels))
    total = len(pixels)
    return {
        "images": total,
        "agree": agree,
        "script_accuracy": correct / total if labels is not None and total else None,
        "ms_per_image": 1000 * elapsed / total if total else 0.0,
        "locking_script_bytes": len(locking),
    }


# One cached entry per live contract (a parsed ~42 KB bounty script is about 2.5 MB of tuples); a pool bounty's
# K prizes share one script, so one entry serves them all.
_LOCK_CACHE = 32


@lru_cache(maxsize=_LOCK_CACHE)
def locking_chunks(raw: bytes) -> list[tuple[int, bytes | None]] | None:
    """A locking script as the (opcode, data) tuples bsv-sdk's C interpreter runs, parsed in C once per script.

    Every spend of a contract runs the same ~42 KB script: bsv-sdk's `Spend` re-parses nothing once its `Script`
    is parsed, but it parses in Python (about 40 ms for the classifier) and rebuilds the tuples on every call
    (about 4 ms), where the C parser takes about 2 ms once. None when the C extension is missing or its parse
    does not give back the very bytes (a truncated push: bsv-sdk's own path then judges the script as before).
    The interpreter only reads the list; it is shared by every validation of the script, never mutated.
    """
    if _native is None:
        return None
    try:
        chunks = _native.parse_script_chunks(raw)
        same = _native.serialize_script_chunks(chunks) == raw
    except (ValueError, TypeError):
        return None
    return chunks if same else None


def parsed_locking_script(raw: bytes) -> Script:
    """A bsv-sdk ``Script`` whose chunks are parsed (the pure-Python path, and scripts the C parser refuses)."""
    return _parsed_script(raw)


@lru_cache(maxsize=_LOCK_CACHE)
def _parsed_script(raw: bytes) -> Script:
    script = Script(raw)
    script.chunks  # noqa: B018 (parsing is lazy: do it now, once)
    return script


def clear_script_cache() -> None:
    """Forget every parsed locking script and every input found valid (a benchmark's first validation then pays
    for parsing, as a fresh validator does)."""
    locking_chunks.cache_clear()
    _parsed_script.cache_clear()
    with _valid_lock:
        _valid_spends.clear()


# Inputs this process validated, by everything the verdict depends on (`_spend_key`): the service validates a
# claim before broadcasting it and the embedded dev chain validates it again on arrival, in the same process.
_VALID_SPENDS = 4096
_valid_spends: OrderedDict[bytes, None] = OrderedDict()
_valid_lock = threading.Lock()


def _spend_key(tx: Transaction, index: int) -> bytes:
    """What an input's verdict depends on: the whole spending transaction, which input, and the script and value
    of every output it spends (signatures commit to the other inputs' too)."""
    digest = hashlib.sha256(tx.serialize())
    digest.update(index.to_bytes(4, "little"))
    for spent in tx.inputs:
        script = spent.locking_script.serialize() if spent.locking_script is not None else b""
        digest.update(hashlib.sha256(script).digest() + (spent.satoshis or 0).to_bytes(8, "little"))
    return digest.digest()


def validate_once(tx: Transaction, index: int) -> None:
    """`validate_input`, skipped for an input this process already found valid byte for byte, with the same
    outputs spent: the service validates a claim before broadcasting it, and the embedded dev chain validates it
    again on arrival in the same process. (Benchmarks time `validate_input` itself.)"""
    if tx.inputs[index].locking_script is None or tx.inputs[index].satoshis is None:
        validate_input(tx, index)  # raises its sentence
    key = _spend_key(tx, index)
    with _valid_lock:
        if key in _valid_spends:
            _valid_spends.move_to_end(key)
            return
    validate_input(tx, index)
    with _valid_lock:
        _valid_spends[key] = None
        if len(_valid_spends) > _VALID_SPENDS:
            _valid_spends.popitem(last=False)


def validate_input(tx: Transaction, index: int) -> None:
    """Validate input `index` of a complete transaction as a node would (its source output must be known).

    With bsv-sdk's C extension (the normal case) the locking script's parse is shared across validations
    (`locking_chunks`) and the C interpreter is called directly, exactly as `Spend.validate` calls it;
    otherwise, or for a script the C parser cannot give back byte for byte, `Spend` runs as it always did.
    """
    tx_input = tx.inputs[index]
    if tx_input.locking_script is None or tx_input.satoshis is None:
        raise ScriptError(f"input {index} does not say which output it spends (script and value unknown)")
    unlocking = tx_input.unlocking_script if tx_input.unlocking_script is not None else Script(b"")
    unlocking_raw = unlocking.serialize()
    unlock = _unlocking_chunks(unlocking_raw)
    if unlock is None and ends_inside_a_push(unlocking_raw):
        # bsv-sdk reads a push cut short by the script's end as an empty push; a node refuses the script (its
        # parse fails), and so must we: the watcher would not read such a claim back (found by test_bounty's fuzz)
        raise ScriptError(f"input {index} of {tx.txid()} is invalid", "the unlocking script ends inside a push")
    raw = tx_input.locking_script.serialize()
    lock = locking_chunks(raw)
    unlock = unlock if lock is not None else None
    try:
        if lock is not None and unlock is not None:
            ok = _native.spend_validate(
                unlock, lock, tx.version, tx_input.source_txid, tx_input.source_output_index, tx.locktime, index,
                tx_input.sequence, tx_input.satoshis,
                [(other.source_txid, other.source_output_index,
                  other.locking_script.serialize() if other.locking_script else b"", other.satoshis or 0,
                  other.sequence, int(other.sighash)) for i, other in enumerate(tx.inputs) if i != index],
                [output.serialize() for output in tx.outputs])
        else:
            ok = Spend({
                "sourceTXID": tx_input.source_txid,
                "sourceOutputIndex": tx_input.source_output_index,
                "sourceSatoshis": tx_input.satoshis,
                "lockingScript": parsed_locking_script(raw),
                "transactionVersion": tx.version,
                "otherInputs": [other for i, other in enumerate(tx.inputs) if i != index],
                "inputIndex": index,
                "unlockingScript": unlocking,
                "outputs": tx.outputs,
                "inputSequence": tx_input.sequence,
                "lockTime": tx.locktime,
            }).validate()
    except RuntimeError as exc:
        raise ScriptError(f"input {index} of {tx.txid()} is invalid", _reason(exc)) from None
    if not ok:
        raise ScriptError(f"input {index} of {tx.txid()} is invalid", "validate() returned False")


def ends_inside_a_push(raw: bytes) -> bool:
    """Whether a push's length runs past the end of `raw` (a node's script parse fails there)."""
    at = 0
    while at < len(raw):
        op, at = raw[at], at + 1
        if 0 < op < 0x4C:
            size = op
        elif op in (0x4C, 0x4D, 0x4E):
            width = {0x4C: 1, 0x4D: 2, 0x4E: 4}[op]
            if at + width > len(raw):
                return True
            size, at = int.from_bytes(raw[at:at + width], "little"), at + width
        else:
            continue
        if at + size > len(raw):
            return True
        at += size
    return False


def _unlocking_chunks(raw: bytes) -> list[tuple[int, bytes | None]] | None:
    """An unlocking script's tuples from the C parser (not cached: each spend brings its own), or None."""
    if _native is None:
        return None
    try:
        chunks = _native.parse_script_chunks(raw)
        return chunks if _native.serialize_script_chunks(chunks) == raw else None
    except (ValueError, TypeError):
        return None
