"""Script building on bsv-sdk's types: minimal pushes, annotated assembly, policy limits, stack tracking.

In the spirit of python-bitcoinlib's ``CScript([...])``: a list of opcodes, ints and bytes goes in,
minimally encoded pushes come out (``encode_item`` is the one place that converts), and the result is an
immutable ``AnnotatedScript`` that prints as assembly with the notes a generator attached to its parts.

``Stack`` tracks named stack slots at compile time so a code generator can ask for ``pick("x17")`` and
get the right ``<depth> OP_PICK`` without counting by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeAlias

from bsv.constants import OPCODE_VALUE_NAME_DICT, OpCode
from bsv.script.script import Script
from bsv.utils import encode_pushdata

from contracts.errors import ScriptError, ScriptLimitError

# Node policy defaults (SV Node, Teranode): see FACTS.md "BSV network policy".
MAX_SCRIPT_BYTES = 500_000
MAX_SCRIPT_NUM_BYTES = 10_000
MAX_OPS = 1_000_000

_OP_16 = OpCode.OP_16[0]
_OP_PUSHDATA1, _OP_PUSHDATA2, _OP_PUSHDATA4 = OpCode.OP_PUSHDATA1[0], OpCode.OP_PUSHDATA2[0], OpCode.OP_PUSHDATA4[0]
_NAMES = {value[0]: name.replace("OP_FALSE", "OP_0").replace("OP_TRUE", "OP_1")
          for value, name in OPCODE_VALUE_NAME_DICT.items()}
_WRAP = 100  # assembly line width


@dataclass(frozen=True)
class Note:
    """A comment attached to the position where it appears in an item list; emits no bytes."""

    text: str


Item: TypeAlias = "OpCode | int | bytes | Note"


def script_number(value: int) -> bytes:
    """The minimal script-number encoding of ``value``: little-endian magnitude, sign in the top bit."""
    if value == 0:
        return b""
    magnitude = abs(value)
    octets = bytearray(magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little"))
    if octets[-1] & 0x80:
        octets.append(0)
    if value < 0:
        octets[-1] |= 0x80
    return bytes(octets)


def decode_number(octets: bytes) -> int:
    """Read a script number (any encoding, minimal or not)."""
    if not octets:
        return 0
    magnitude = int.from_bytes(octets[:-1] + bytes([octets[-1] & 0x7F]), "little")
    return -magnitude if octets[-1] & 0x80 else magnitude


def is_minimal_number(octets: bytes) -> bool:
    """True when ``octets`` is the shortest encoding of its value (what version-1 spends require)."""
    return script_number(decode_number(octets)) == octets


def encode_item(item: OpCode | int | bytes) -> bytes:
    """Serialize one item: an opcode as itself, an int or bytes as its minimal push.

    Ints: 0 -> OP_0, 1..16 -> OP_1..OP_16, -1 -> OP_1NEGATE, else the minimal script number with the
    smallest push opcode. Bytes: the smallest push (OP_0 for empty, OP_N / OP_1NEGATE for the one-byte
    values the minimal-push rule demands, then direct, PUSHDATA1, PUSHDATA2, PUSHDATA4).
    """
    if isinstance(item, OpCode):
        return item.value
    if isinstance(item, bool):
        raise ScriptError(f"ambiguous script item {item!r}: push 0/1 or an opcode")
    if isinstance(item, int):
        number = script_number(item)
        if len(number) > MAX_SCRIPT_NUM_BYTES:
            raise ScriptLimitError(f"a pushed number of {len(number)} bytes exceeds {MAX_SCRIPT_NUM_BYTES}")
        return bytes(encode_pushdata(number))
    if isinstance(item, bytes | bytearray):
        return bytes(encode_pushdata(bytes(item)))
    raise ScriptError(f"cannot encode script item {item!r} of type {type(item).__name__}")


@dataclass(frozen=True)
class Chunk:
    """One parsed instruction: its offset, opcode byte and pushed data (None for non-push opcodes)."""

    offset: int
    op: int
    data: bytes | None

    @property
    def is_push(self) -> bool:
        return self.op <= _OP_16

    def asm(self) -> str:
        if self.data is None:
            return _NAMES.get(self.op, f"OP_UNKNOWN{self.op}")
        if len(self.data) <= 4 and is_minimal_number(self.data):
            return str(decode_number(self.data))
        return "0x" + self.data.hex()


def iter_chunks(raw: bytes) -> Iterator[Chunk]:
    """Parse raw script bytes into chunks; raises ScriptError on a truncated push."""
    i, n = 0, len(raw)
    while i < n:
        op, start = raw[i], i
        i += 1
        data: bytes | None = None
        if 0 < op < _OP_PUSHDATA1:
            size = op
        elif op in (_OP_PUSHDATA1, _OP_PUSHDATA2, _OP_PUSHDATA4):
            width = {_OP_PUSHDATA1: 1, _OP_PUSHDATA2: 2, _OP_PUSHDATA4: 4}[op]
            size = int.from_bytes(raw[i:i + width], "little")
            i += width
        elif op == 0:
            size, data = 0, b""
        elif OpCode.OP_1NEGATE[0] == op or OpCode.OP_1[0] <= op <= _OP_16:
            data = script_number(-1 if op == OpCode.OP_1NEGATE[0] else op - OpCode.OP_1[0] + 1)
            size = 0
        else:
            size = 0
        if size:
            if i + size > n:
                raise ScriptError(f"truncated push at byte {start}")
            data = raw[i:i + size]
            i += size
        yield Chunk(start, op, data)


@dataclass(frozen=True)
class AnnotatedScript:
    """Immutable script bytes plus notes (byte offset, text); ``str()`` gives annotated assembly."""

    raw: bytes
    notes: tuple[tuple[int, str], ...] = field(default=())

    def __bytes__(self) -> bytes:
        return self.raw

    def __len__(self) -> int:
        return len(self.raw)

    def __add__(self, other: AnnotatedScript) -> AnnotatedScript:
        shifted = tuple((offset + len(self.raw), text) for offset, text in other.notes)
        return AnnotatedScript(self.raw + other.raw, self.notes + shifted)

    @cached_property
    def script(self) -> Script:
        """The bsv-sdk ``Script`` (built once, so its parsed chunks are reused across validations)."""
        return Script(self.raw)

    @cached_property
    def chunks(self) -> tuple[Chunk, ...]:
        return tuple(iter_chunks(self.raw))

    @property
    def ops(self) -> int:
        """Non-push opcodes: what the node's ops-per-script limit counts."""
        return sum(1 for chunk in self.chunks if not chunk.is_push)

    def max_push_number_bytes(self) -> int:
        return max((len(c.data) for c in self.chunks if c.data is not None), default=0)

    def check_limits(self) -> None:
        """Raise ScriptLimitError when the script breaks a network policy limit it can break by itself."""
        if len(self.raw) > MAX_SCRIPT_BYTES:
            raise ScriptLimitError(f"script is {len(self.raw)} bytes; policy allows {MAX_SCRIPT_BYTES}")
        if self.ops > MAX_OPS:
            raise ScriptLimitError(f"script has {self.ops} opcodes; policy allows {MAX_OPS}")

    def __str__(self) -> str:
        return disassemble(self.raw, self.notes)

    def __repr__(self) -> str:
        return f"AnnotatedScript({len(self.raw)} bytes, {len(self.notes)} notes)"


def disassemble(raw: bytes, notes: Iterable[tuple[int, str]] = ()) -> str:
    """Assembly text: each note on its own ``# ...`` line before the instructions it labels."""
    pending = sorted(notes)
    lines: list[str] = []
    line: list[str] = []
    width = 0

    def flush() -> None:
        nonlocal line, width
        if line:
            lines.append(" ".join(line))
        line, width = [], 0

    k = 0
    for chunk in iter_chunks(raw):
        while k < len(pending) and pending[k][0] <= chunk.offset:
            flush()
            lines.append(f"# {pending[k][1]}")
            k += 1
        token = chunk.asm()
        if width + len(token) > _WRAP:
            flush()
        line.append(token)
        width += len(token) + 1
    for _, text in pending[k:]:
        flush()
        lines.append(f"# {text}")
    flush()
    return "\n".join(lines)


class ScriptBuilder:
    """Accumulates items into bytes; ``build()`` returns the immutable result."""

    def __init__(self) -> None:
        self._raw = bytearray()
        self._notes: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._raw)

    def add(self, *items: Item) -> ScriptBuilder:
        for item in items:
            if isinstance(item, Note):
                self._notes.append((len(self._raw), item.text))
            else:
                self._raw += encode_item(item)
        return self

    def extend(self, items: Iterable[Item]) -> ScriptBuilder:
        return self.add(*items)

    def note(self, text: str) -> ScriptBuilder:
        return self.add(Note(text))

    def build(self) -> AnnotatedScript:
        return AnnotatedScript(bytes(self._raw), tuple(self._notes))


def build_script(items: Iterable[Item]) -> AnnotatedScript:
    """``build_script([OP_DUP, 5, OP_ADD])``: items in, minimal pushes out."""
    return ScriptBuilder().extend(items).build()


def push_only_script(values: Iterable[int | bytes]) -> Script:
    """A push-only (unlocking) script of minimal pushes, as bsv-sdk's ``Script``."""
    return Script(b"".join(encode_item(v) for v in values))


class Stack:
    """Compile-time model of the main stack: item names, bottom first.

    Generators push and pop names as the emitted code does, and ask ``pick``/``roll`` for the items
    that move a named slot to the top; a wrong model fails loudly with ScriptError, never silently.
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._items: list[str] = []
        self._index: dict[str, int] = {}
        self._anonymous = 0
        for name in names:
            self.push(name)

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return list(self._items)

    def depth(self, name: str) -> int:
        """0 for the top item, 1 for the one below it, ..."""
        try:
            return len(self._items) - 1 - self._index[name]
        except KeyError:
            raise ScriptError(f"stack model has no item {name!r}") from None

    def push(self, name: str | None = None) -> str:
        if name is None:
            self._anonymous += 1
            name = f"_{self._anonymous}"
        if name in self._index:
            raise ScriptError(f"stack model already holds {name!r}")
        self._index[name] = len(self._items)
        self._items.append(name)
        return name

    def pop(self, expected: str | None = None) -> str:
        if not self._items:
            raise ScriptError("stack model underflow: pop from an empty stack")
        name = self._items.pop()
        del self._index[name]
        if expected is not None and name != expected:
            raise ScriptError(f"stack model expected {expected!r} on top, found {name!r}")
        return name

    def apply(self, consumes: int, produces: Iterable[str | None] = (None,)) -> None:
        """Record an operation that pops ``consumes`` items and pushes ``produces``."""
        if consumes > len(self._items):
            raise ScriptError(f"stack model underflow: an operation needs {consumes} items, {len(self)} held")
        for _ in range(consumes):
            self.pop()
        for name in produces:
            self.push(name)

    def pick(self, name: str, as_name: str | None = None) -> list[Item]:
        """Copy ``name`` to the top; the cheapest encoding for its depth (OP_DUP, OP_OVER, <d> OP_PICK)."""
        depth = self.depth(name)
        self.push(as_name)
        if depth == 0:
            return [OpCode.OP_DUP]
        if depth == 1:
            return [OpCode.OP_OVER]
        return [depth, OpCode.OP_PICK]

    def roll(self, name: str) -> list[Item]:
        """Move ``name`` to the top (nothing, OP_SWAP, OP_ROT, or <d> OP_ROLL)."""
        depth = self.depth(name)
        position = self._index[name]
        del self._items[position]
        self._items.append(name)
        for i in range(position, len(self._items)):
            self._index[self._items[i]] = i
        if depth == 0:
            return []
        if depth == 1:
            return [OpCode.OP_SWAP]
        if depth == 2:
            return [OpCode.OP_ROT]
        return [depth, OpCode.OP_ROLL]
