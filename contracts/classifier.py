"""The MNIST judge as Bitcoin Script: a locking-script fragment that computes ``model.reference.classify``.

Stack contract of the fragment (``ClassifierScript.code``)::

    in:   x[order[0]] ... x[order[783]]  e_1 ... e_k      784 pixels as minimal numbers, then k extra items
    out:  margin label                                   the extra items moved to the alt stack
    out:  runner_up margin label                         the variant compiled with ``runner_up=True``

It checks the stack depth first (so 783 or 785 pixels fail), checks every pixel is 0..255 and consumes
them all, and computes exactly ``classify(model, image)``. The design, scheme "grouped-picks/packed-lanes":

* Pixels are pushed in ``order``: the ones used by the most layer-1 weights last, so they sit shallowest
  and ``<d> OP_PICK`` costs the fewest bytes; pixels no live neuron uses go deepest.
* Layer 1, per neuron: the nonzero weights grouped by magnitude; each group's pixels are picked and
  added or subtracted (by sign), the group sum multiplied once by the magnitude; then the bias, ReLU
  (``OP_0 OP_MAX``), the shift (``OP_DIV`` by 2**shift: truncation is floor because the value is >= 0)
  and the clamp (``<255> OP_MIN``), each emitted only when an interval bound says it can matter.
* Layer 2 in one number: ``L = sum_c (b2[c] + OFFSET) * 2**(W*c)``; each hidden value adds
  ``h_j * K_j`` with ``K_j = sum_c w2[j, c] * 2**(W*c)``. The final lanes lie in [2**(W-8), 2**(W-1)),
  so no lane borrows from another and every lane is exactly W/8 bytes: ``OP_SPLIT`` cuts them apart.
* Argmax: each lane gets a one-byte tag ``10 - c`` below it (``OP_CAT``), so comparing tagged numbers
  compares logits first and prefers the lowest class on a tie; a top-two pass gives the label (from the
  winner's tag) and margin = top - runner-up, 0 on a tie. The ``runner_up`` variant (for the vetted
  bounty's appeal path) also leaves the runner-up's label (from the second's tag) below the margin.
* Range checks at the end, 4 bytes a pixel instead of 5 with ``OP_WITHIN``: each pixel layer 1 reads is
  widened with ``OP_2 OP_NUM2BIN`` and concatenated, and one OR with (ff 00)*n shows every high byte is
  zero. The few pixels no live neuron reads keep ``OP_WITHIN``, which also insists on minimal encodings.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
from bsv.constants import OpCode
from bsv.script.script import Script

from contracts.errors import ScriptError, ScriptLimitError
from contracts.script import (
    MAX_SCRIPT_NUM_BYTES,
    AnnotatedScript,
    Item,
    Note,
    ScriptBuilder,
    Stack,
    encode_item,
    push_only_script,
)
from model.reference import HIDDEN_MAX, PIXELS, IntegerModel, as_pixels

log = logging.getLogger(__name__)

SCHEME = "grouped-picks/packed-lanes-v1"
CLASSES = 10
PIXEL_LIMIT = 256  # pixels are checked 0 <= x < PIXEL_LIMIT

# Byte-breakdown categories, in script order.
HEADER, PICKS, PICK_ADDS, GROUPS, TAIL, LAYER2, ARGMAX, RANGE = (
    "header", "pixel picks", "pick adds", "group multiplies", "neuron tail", "layer 2", "argmax", "range checks")

OP = OpCode


@dataclass(frozen=True, eq=False)
class ClassifierScript:
    """A compiled classifier: the fragment, the pixel push order and what it cost."""

    model: IntegerModel = field(repr=False)
    code: AnnotatedScript
    order: tuple[int, ...]
    lane_bits: int
    extra_items: int
    breakdown: MappingProxyType[str, int]
    max_number_bytes: int
    body: AnnotatedScript = field(repr=False)
    runner_up: bool = False  # whether the fragment also leaves the runner-up's label (below the margin)

    @property
    def locking_script_bytes(self) -> int:
        return len(self.code)

    @property
    def opcodes(self) -> int:
        return self.code.ops

    @property
    def nonzero_weights(self) -> int:
        return self.model.nonzero_weights

    def with_extra_items(self, extra_items: int) -> ClassifierScript:
        """The same fragment expecting ``extra_items`` more items above the pixels."""
        if extra_items == self.extra_items:
            return self
        header = _header(extra_items)
        header_bytes = self.breakdown[HEADER] - len(_header(self.extra_items)) + len(header)
        breakdown = dict(self.breakdown) | {HEADER: header_bytes}
        return replace(self, code=header + self.body, extra_items=extra_items,
                       breakdown=MappingProxyType(breakdown))

    def report(self) -> dict[str, Any]:
        return {
            "scheme": SCHEME,
            "locking_script_bytes": self.locking_script_bytes,
            "opcodes": self.opcodes,
            "nonzero_weights": self.nonzero_weights,
            "nonzero_layer1_weights": int(np.count_nonzero(self.model.w1)),
            "lane_bits": self.lane_bits,
            "max_number_bytes": self.max_number_bytes,
            "breakdown_bytes": dict(self.breakdown),
        }


@dataclass(frozen=True)
class _NeuronPlan:
    """Interval facts about one hidden neuron over every image of pixels 0..255."""

    index: int
    lo: int          # smallest pre-activation a_j
    hi: int          # largest pre-activation a_j
    h_lo: int        # smallest hidden value
    h_hi: int        # largest hidden value

    @property
    def constant(self) -> bool:
        return self.h_lo == self.h_hi

    @property
    def needs_relu(self) -> bool:
        return self.lo < 0

    def needs_clamp(self, shift: int) -> bool:
        return (max(self.hi, 0) >> shift) > HIDDEN_MAX


def _hidden_value(a: int, shift: int) -> int:
    return min(max(a, 0) >> shift, HIDDEN_MAX)


def _check_model(model: IntegerModel) -> None:
    hidden = model.hidden_size
    shapes = {"w1": (PIXELS, hidden), "b1": (hidden,), "shift": (hidden,), "w2": (hidden, CLASSES), "b2": (CLASSES,)}
    for name, shape in shapes.items():
        array = getattr(model, name)
        if array.shape != shape:
            raise ScriptError(f"model array {name} has shape {array.shape}, expected {shape}")
        if not np.issubdtype(array.dtype, np.integer):
            raise ScriptError(f"model array {name} must hold integers, not {array.dtype}")
    if model.shift.min(initial=0) < 0:
        raise ScriptError("model shifts must be >= 0")


def _plan_neurons(model: IntegerModel) -> list[_NeuronPlan]:
    w1 = model.w1
    pos = np.where(w1 > 0, w1, 0).sum(axis=0) * (PIXEL_LIMIT - 1)
    neg = np.where(w1 < 0, w1, 0).sum(axis=0) * (PIXEL_LIMIT - 1)
    plans = []
    for j in range(model.hidden_size):
        lo, hi, shift = int(model.b1[j] + neg[j]), int(model.b1[j] + pos[j]), int(model.shift[j])
        plans.append(_NeuronPlan(j, lo, hi, _hidden_value(lo, shift), _hidden_value(hi, shift)))
    return plans


def _pixel_order(model: IntegerModel, live: list[int]) -> tuple[tuple[int, ...], int]:
    """Least-used pixels first (deepest), most-used last (shallowest), ties by pixel index; and how many are used."""
    uses = np.count_nonzero(model.w1[:, live], axis=1)
    return tuple(int(i) for i in np.lexsort((np.arange(PIXELS), uses))), int(np.count_nonzero(uses))


def _lane_layout(model: IntegerModel, plans: list[_NeuronPlan]) -> tuple[int, int]:
    """Lane width W (a whole number of bytes) and OFFSET putting every final lane in [2**(W-8), 2**(W-1))."""
    h_lo = np.array([p.h_lo for p in plans], dtype=object)
    h_hi = np.array([p.h_hi for p in plans], dtype=object)
    w2 = model.w2.astype(object)
    z_lo = [int(model.b2[c]) + sum(min(a * w, b * w) for a, b, w in zip(h_lo, h_hi, w2[:, c], strict=True))
            for c in range(CLASSES)]
    z_hi = [int(model.b2[c]) + sum(max(a * w, b * w) for a, b, w in zip(h_lo, h_hi, w2[:, c], strict=True))
            for c in range(CLASSES)]
    spread = max(z_hi) - min(z_lo)
    bits = 16
    while spread >= 2 ** (bits - 1) - 2 ** (bits - 8):
        bits += 8
    return bits, 2 ** (bits - 8) - min(z_lo)


def _header(extra_items: int) -> AnnotatedScript:
    if extra_items < 0:
        raise ScriptError(f"extra_items must be >= 0, not {extra_items}")
    note = Note(f"expect {PIXELS} pixels and {extra_items} extra items; park the extras on the alt stack")
    items: list[Item] = [note, OP.OP_DEPTH, PIXELS + extra_items, OP.OP_EQUALVERIFY]
    items += [OP.OP_TOALTSTACK] * extra_items
    return ScriptBuilder().extend(items).build()


class _Emitter:
    """Script builder plus the stack model, counting the bytes each part of the design costs."""

    def __init__(self, stack: Stack) -> None:
        self.builder = ScriptBuilder()
        self.stack = stack
        self.sizes: Counter[str] = Counter()

    def emit(self, category: str, *items: Item) -> None:
        before = len(self.builder)
        self.builder.add(*items)
        self.sizes[category] += len(self.builder) - before

    def note(self, text: str) -> None:
        self.builder.note(text)


def _cheapest_const_op(value: int, op: OpCode) -> list[Item]:
    """``<value> op`` for op ADD or SUB, or the equivalent with the negated constant when it is shorter."""
    if value == 0:
        return []
    other = OP.OP_SUB if op == OP.OP_ADD else OP.OP_ADD
    if (value == 1 and op == OP.OP_ADD) or (value == -1 and op == OP.OP_SUB):
        return [OP.OP_1ADD]
    if (value == -1 and op == OP.OP_ADD) or (value == 1 and op == OP.OP_SUB):
        return [OP.OP_1SUB]
    if len(encode_item(-value)) < len(encode_item(value)):
        return [-value, other]
    return [value, op]


def _multiply(m: int, chronicle: bool) -> list[Item]:
    if m == 1:
        return []
    if m == 2 and chronicle:
        return [OP.OP_2MUL]
    return [m, OP.OP_MUL]


def _divide_by_power_of_two(shift: int, chronicle: bool) -> list[Item]:
    if shift == 0:
        return []
    if chronicle and shift == 1:
        return [OP.OP_2DIV]
    if chronicle and len(encode_item(shift)) < len(encode_item(1 << shift)):
        return [shift, OP.OP_RSHIFTNUM]
    return [1 << shift, OP.OP_DIV]


def _groups(weights: np.ndarray) -> list[tuple[int, list[int], list[int]]]:
    """(magnitude, pixels with +m, pixels with -m), largest positive-led group first, then by size."""
    groups = []
    for m in sorted({abs(int(w)) for w in weights[weights != 0]}):
        plus = [int(i) for i in np.flatnonzero(weights == m)]
        minus = [int(i) for i in np.flatnonzero(weights == -m)]
        groups.append((m, plus, minus))
    groups.sort(key=lambda g: (not g[1], -(len(g[1]) + len(g[2]))))
    return groups


def _emit_neuron(em: _Emitter, model: IntegerModel, plan: _NeuronPlan, chronicle: bool) -> None:
    """[.. L] -> [.. L h_j]: the grouped weighted sum, then bias, ReLU, shift and clamp as needed."""
    j, stack = plan.index, em.stack
    groups = _groups(model.w1[:, j])
    if not groups:  # constant neurons are folded into L at compile time
        raise ScriptError(f"neuron {j} has no weights; it should have been folded")
    em.note(f"neuron {j}")
    for g, (m, plus, minus) in enumerate(groups):
        # A group with positive weights sums (plus - minus) and is added; a minus-only group sums and is subtracted.
        negated = not plus
        terms = [(i, OP.OP_ADD) for i in plus] + [(i, OP.OP_ADD if negated else OP.OP_SUB) for i in minus]
        name = "acc" if g == 0 else "part"
        for k, (i, op) in enumerate(terms):
            em.emit(PICKS, *stack.pick(f"x{i}", as_name=name if k == 0 else None))
            if k:
                em.emit(PICK_ADDS, op)
                stack.apply(2, [name])
        em.emit(GROUPS, *_multiply(m, chronicle))
        if g:
            em.emit(GROUPS, OP.OP_SUB if negated else OP.OP_ADD)
            stack.apply(2, ["acc"])
        elif negated:
            em.emit(GROUPS, OP.OP_NEGATE)
    shift = int(model.shift[j])
    em.emit(TAIL, *_cheapest_const_op(int(model.b1[j]), OP.OP_ADD))
    if plan.needs_relu:
        em.emit(TAIL, OP.OP_0, OP.OP_MAX)
    em.emit(TAIL, *_divide_by_power_of_two(shift, chronicle))
    if plan.needs_clamp(shift):
        em.emit(TAIL, HIDDEN_MAX, OP.OP_MIN)


def _lane_constant(row: Iterable[int], bits: int) -> int:
    return sum(int(w) << (bits * c) for c, w in enumerate(row))


def _emit_argmax(em: _Emitter, bits: int, runner_up: bool) -> None:
    """[L] -> [margin, label], or [runner_up, margin, label]."""
    width = bits // 8
    em.note("cut L into its 10 lanes (lane 0 deepest), tag lane c with the byte 10-c below it")
    em.emit(ARGMAX, *[width, OP.OP_SPLIT] * (CLASSES - 1))
    em.emit(ARGMAX, CLASSES - 9, OP.OP_SWAP, OP.OP_CAT, OP.OP_SWAP, CLASSES - 8, OP.OP_SWAP, OP.OP_CAT)
    em.note("top two of the tagged lanes: [second, top]")
    em.emit(ARGMAX, OP.OP_2DUP, OP.OP_MIN, OP.OP_ROT, OP.OP_ROT, OP.OP_MAX)
    for c in range(CLASSES - 3, -1, -1):
        em.emit(ARGMAX, OP.OP_ROT, CLASSES - c, OP.OP_SWAP, OP.OP_CAT)
        em.emit(ARGMAX, OP.OP_2DUP, OP.OP_MAX, OP.OP_TOALTSTACK, OP.OP_MIN, OP.OP_MAX, OP.OP_FROMALTSTACK)
    if runner_up:
        em.note("margin = top - second (tags cut off); label = 10 - tag of the top; runner-up = 10 - tag of the second")
        em.emit(ARGMAX, OP.OP_1, OP.OP_SPLIT, OP.OP_ROT, OP.OP_1, OP.OP_SPLIT, OP.OP_ROT, OP.OP_SWAP, OP.OP_SUB)
        em.emit(ARGMAX, OP.OP_ROT, CLASSES, OP.OP_SWAP, OP.OP_SUB, OP.OP_ROT, CLASSES, OP.OP_SWAP, OP.OP_SUB)
        em.emit(ARGMAX, OP.OP_ROT, OP.OP_ROT)
        em.stack.apply(1, list(_outputs(runner_up)))
        return
    em.note("margin = top - second (tags cut off); label = 10 - tag of the top")
    em.emit(ARGMAX, OP.OP_1, OP.OP_SPLIT, OP.OP_ROT, OP.OP_1, OP.OP_SPLIT, OP.OP_NIP, OP.OP_SUB)
    em.emit(ARGMAX, CLASSES, OP.OP_ROT, OP.OP_SUB)
    em.stack.apply(1, ["margin", "label"])


def _outputs(runner_up: bool) -> tuple[str, ...]:
    return ("runner_up", "margin", "label") if runner_up else ("margin", "label")


def _emit_repeat(em: _Emitter, unit: bytes, count: int) -> None:
    """Leave ``unit * count`` on the stack, built by doubling (Horner over the bits of count)."""
    em.emit(RANGE, unit, OP.OP_DUP)
    for bit in bin(count)[3:]:
        em.emit(RANGE, OP.OP_DUP, OP.OP_CAT)
        if bit == "1":
            em.emit(RANGE, OP.OP_OVER, OP.OP_CAT)
    em.emit(RANGE, OP.OP_NIP)


def _emit_range_checks(em: _Emitter, order: tuple[int, ...], weighted: int, outputs: tuple[str, ...]) -> None:
    """Check and consume every pixel, top first; the outputs ([margin, label]) wait on the alt stack meanwhile.

    Weighted pixels (the top ``weighted`` ones) are each widened to two bytes with ``OP_2 OP_NUM2BIN``
    (which fails beyond +-32767) and concatenated; x is in 0..255 exactly when its high byte is 0x00, so
    one OR with (ff 00)*n must give back the mask. Arithmetic in layer 1 already demanded minimal
    encodings of these pixels. Unweighted pixels, which no arithmetic reads, use ``OP_WITHIN``: it
    checks the range and the minimal encoding (so an unlocking script cannot be malleated there).
    """
    stack = em.stack
    em.emit(RANGE, *[OP.OP_TOALTSTACK] * len(outputs))
    stack.apply(len(outputs), [])
    if weighted:
        em.note(f"range-check the {weighted} weighted pixels: concatenate them as 2-byte numbers, high bytes 0")
        em.emit(RANGE, OP.OP_0)
        stack.push("S")
        for i in reversed(order[len(order) - weighted:]):
            if stack.depth(f"x{i}") != 1:
                raise ScriptError(f"range check expected pixel {i} just below the byte string")
            em.emit(RANGE, OP.OP_SWAP, OP.OP_2, OP.OP_NUM2BIN, OP.OP_CAT)
            stack.roll(f"x{i}")
            stack.apply(2, ["S"])
        _emit_repeat(em, b"\xff\x00", weighted)
        em.emit(RANGE, OP.OP_TUCK, OP.OP_OR, OP.OP_EQUALVERIFY)
        stack.pop("S")
    unweighted = order[: len(order) - weighted]
    if unweighted:
        em.note(f"range-check the {len(unweighted)} unweighted pixels with OP_WITHIN 0 {PIXEL_LIMIT}")
        em.emit(RANGE, 0, PIXEL_LIMIT)
        stack.apply(0, ["lo", "hi"])
        for i in reversed(unweighted):
            if stack.depth(f"x{i}") != 2:
                raise ScriptError(f"range check expected pixel {i} just below the bounds")
            em.emit(RANGE, OP.OP_3DUP, OP.OP_WITHIN, OP.OP_VERIFY, OP.OP_ROT, OP.OP_DROP)
            stack.roll(f"x{i}")
            stack.pop(f"x{i}")
        em.emit(RANGE, OP.OP_2DROP)
        stack.apply(2, [])
    em.emit(RANGE, *[OP.OP_FROMALTSTACK] * len(outputs))
    stack.apply(0, list(outputs))


def compile_classifier(model: IntegerModel, *, extra_items: int = 0, chronicle: bool = False,
                       runner_up: bool = False) -> ClassifierScript:
    """Compile ``model`` into the locking-script fragment described in the module docstring.

    ``chronicle`` allows the opcodes restored by the 2026 Chronicle upgrade (OP_2MUL, OP_2DIV,
    OP_RSHIFTNUM) where they save a byte; the default uses only long-standing opcodes. ``runner_up``
    also leaves the runner-up's label below the margin (the vetted bounty's appeal path reads it).
    """
    _check_model(model)
    plans = _plan_neurons(model)
    used = [p for p in plans if np.any(model.w2[p.index])]
    live = [p for p in used if not p.constant]
    order, weighted = _pixel_order(model, [p.index for p in live])
    bits, offset = _lane_layout(model, plans)
    max_number_bytes = CLASSES * bits // 8 + 1
    if max_number_bytes > MAX_SCRIPT_NUM_BYTES:
        raise ScriptLimitError(f"packed logits need {max_number_bytes}-byte numbers; policy allows "
                               f"{MAX_SCRIPT_NUM_BYTES}")

    em = _Emitter(Stack([f"x{i}" for i in order]))
    start = sum((int(model.b2[c]) + offset) << (bits * c) for c in range(CLASSES))
    start += sum(p.h_lo * _lane_constant(model.w2[p.index], bits) for p in used if p.constant)
    em.note(f"L: the 10 logits + {offset} in {bits}-bit lanes, starting from b2 and the constant neurons")
    em.emit(HEADER, start)
    em.stack.push("L")
    for plan in live:
        _emit_neuron(em, model, plan, chronicle)
        em.emit(LAYER2, _lane_constant(model.w2[plan.index], bits), OP.OP_MUL, OP.OP_ADD)
        em.stack.pop("acc")
        em.stack.pop("L")
        em.stack.push("L")
    outputs = _outputs(runner_up)
    _emit_argmax(em, bits, runner_up)
    _emit_range_checks(em, order, weighted, outputs)
    if em.stack.names() != list(outputs):
        raise ScriptError(f"classifier left {em.stack.names()[-5:]} on the stack")

    body = em.builder.build()
    header = _header(extra_items)
    em.sizes[HEADER] += len(header)
    code = header + body
    code.check_limits()  # the numbers are bounded where they are encoded (encode_item)
    sizes = {k: em.sizes[k] for k in (HEADER, PICKS, PICK_ADDS, GROUPS, TAIL, LAYER2, ARGMAX, RANGE)}
    compiled = ClassifierScript(model=model, code=code, order=order, lane_bits=bits,
                                extra_items=extra_items, breakdown=MappingProxyType(sizes),
                                max_number_bytes=max_number_bytes, body=body, runner_up=runner_up)
    log.info("compiled classifier: %d bytes, %d opcodes, %d live neurons, %d-bit lanes",
             compiled.locking_script_bytes, compiled.opcodes, len(live), bits)
    return compiled


_CACHE: dict[tuple[str, bool], ClassifierScript] = {}


def as_classifier(model: IntegerModel | ClassifierScript, *, runner_up: bool = False) -> ClassifierScript:
    """A compiled classifier for ``model`` (compiled once per model and variant, and kept)."""
    if isinstance(model, ClassifierScript):
        if model.runner_up == runner_up:
            return model
        model = model.model
    key = (model.sha256(), runner_up)
    if key not in _CACHE:
        if len(_CACHE) >= 4:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = compile_classifier(model, runner_up=runner_up)
    return _CACHE[key]


def verify_label_script(model: IntegerModel | ClassifierScript, *, check_margin: bool = False) -> AnnotatedScript:
    """A complete locking script: the unlocking script pushes the pixels, the claimed label (and margin).

    It validates iff the script's label (and margin) equal the claimed ones, leaving exactly one true item.
    """
    compiled = as_classifier(model).with_extra_items(2 if check_margin else 1)
    builder = ScriptBuilder().note("claimed label must equal the computed one")
    if check_margin:
        builder.add(OP.OP_FROMALTSTACK, OP.OP_NUMEQUALVERIFY, Note("and the claimed margin too"),
                    OP.OP_FROMALTSTACK, OP.OP_NUMEQUAL)
    else:
        builder.add(OP.OP_FROMALTSTACK, OP.OP_NUMEQUAL, OP.OP_NIP)
    return compiled.code + builder.build()


def pixel_pushes(model: IntegerModel | ClassifierScript, image: np.ndarray) -> list[int]:
    """The 784 pixel values in the order the unlocking script pushes them (checked 0..255)."""
    pixels = as_pixels(image)
    if len(pixels) != 1:
        raise ScriptError(f"expected one image, got {len(pixels)}")
    row = pixels[0]
    return [int(row[i]) for i in as_classifier(model).order]


def unlocking_pixels(model: IntegerModel | ClassifierScript, image: np.ndarray) -> Script:
    """The push-only unlocking script for ``image`` (uint8, 784 values in any shape)."""
    return push_only_script(pixel_pushes(model, image))


def unlocking_claim(model: IntegerModel | ClassifierScript, image: np.ndarray, label: int,
                    margin: int | None = None) -> Script:
    """Unlocking script for ``verify_label_script``: the pixels, the claimed label, and the margin if checked."""
    claims = [int(label)] if margin is None else [int(label), int(margin)]
    return push_only_script([*pixel_pushes(model, image), *claims])
