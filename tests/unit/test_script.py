"""The script builder: minimal pushes, readable assembly, limits and compile-time stack tracking.

Encodings are checked against the bytes the consensus rules demand and, where it matters, by the real
interpreter in a version-1 transaction (which rejects non-minimal pushes).
"""

from __future__ import annotations

import dataclasses

import pytest
from bsv.constants import OpCode
from bsv.script.script import Script
from bsv.utils import encode_int

from contracts.errors import ScriptError, ScriptLimitError
from contracts.interpreter import verify_spend
from contracts.script import (
    MAX_SCRIPT_BYTES,
    MAX_SCRIPT_NUM_BYTES,
    AnnotatedScript,
    Note,
    Stack,
    build_script,
    decode_number,
    encode_item,
    push_only_script,
    script_number,
)

OP = OpCode

INT_PUSHES = [
    (0, "00"),
    (1, "51"),
    (16, "60"),
    (17, "0111"),
    (-1, "4f"),
    (-2, "0182"),
    (127, "017f"),
    (128, "028000"),
    (-128, "028080"),
    (255, "02ff00"),
    (256, "020001"),
    (32767, "02ff7f"),
    (32768, "03008000"),
    (-32768, "03008080"),
    (2**64, "09" + "00" * 8 + "01"),
    (-(2**63), "09" + "00" * 7 + "8080"),
]


@pytest.mark.parametrize(("value", "expected"), INT_PUSHES)
def test_int_push_is_minimal(value: int, expected: str) -> None:
    assert encode_item(value).hex() == expected
    assert encode_item(value) == bytes(encode_int(value))  # agrees with bsv-sdk's own encoder


@pytest.mark.parametrize("value", [v for v, _ in INT_PUSHES] + [2**200 + 1, -(2**255)])
def test_script_number_round_trip(value: int) -> None:
    assert decode_number(script_number(value)) == value


BYTE_PUSHES = [
    (b"", "00"),
    (b"\x00", "0100"),
    (b"\x05", "55"),
    (b"\x10", "60"),
    (b"\x11", "0111"),
    (b"\x81", "4f"),
]


@pytest.mark.parametrize(("data", "expected"), BYTE_PUSHES)
def test_short_byte_push_is_minimal(data: bytes, expected: str) -> None:
    assert encode_item(data).hex() == expected


@pytest.mark.parametrize(
    ("size", "prefix"),
    [
        (1, "01"),
        (75, "4b"),
        (76, "4c4c"),
        (255, "4cff"),
        (256, "4d0001"),
        (65535, "4dffff"),
        (65536, "4e00000100"),
    ],
)
def test_byte_push_uses_smallest_opcode(size: int, prefix: str) -> None:
    data = b"\xaa" * size
    encoded = encode_item(data)
    assert encoded.hex().startswith(prefix)
    assert encoded == bytes.fromhex(prefix) + data


@pytest.mark.parametrize("value", [0, 1, 16, 17, -1, -2, 127, 128, 255, 256, 32767, 32768, 2**64, -(2**70)])
def test_interpreter_accepts_our_pushes(value: int) -> None:
    # A version-1 spend enforces minimal pushes and minimal numbers: our encoding must pass both.
    verify_spend(build_script([value, OP.OP_NUMEQUAL]), push_only_script([value]))


def test_interpreter_rejects_non_minimal_push() -> None:
    locking = build_script([5, OP.OP_NUMEQUAL])
    with pytest.raises(ScriptError) as failure:
        verify_spend(locking, Script(bytes.fromhex("0105")))  # 5 pushed as data, not OP_5
    assert "minimal" in (failure.value.reason or "")


def test_number_longer_than_policy_is_refused() -> None:
    encode_item(2 ** (8 * MAX_SCRIPT_NUM_BYTES - 1) - 1)  # the largest allowed magnitude fits
    with pytest.raises(ScriptLimitError):
        encode_item(2 ** (8 * MAX_SCRIPT_NUM_BYTES))


def test_bool_and_unknown_items_are_refused() -> None:
    with pytest.raises(ScriptError):
        encode_item(True)
    with pytest.raises(ScriptError):
        encode_item(1.5)


def test_disassembly_is_readable_and_annotated() -> None:
    script = build_script([Note("add two"), OP.OP_2, 300, OP.OP_ADD, Note("check"), 302, OP.OP_NUMEQUAL,
                           b"\xde\xad\xbe\xef\x00", OP.OP_DROP])
    text = str(script)
    assert text.splitlines() == [
        "# add two",
        "2 300 OP_ADD",
        "# check",
        "302 OP_NUMEQUAL 0xdeadbeef00 OP_DROP",
    ]
    assert script.ops == 3  # OP_ADD, OP_NUMEQUAL, OP_DROP: pushes are not counted
    assert len(script) == len(bytes(script)) == 1 + 3 + 1 + 3 + 1 + 6 + 1


def test_annotated_script_is_immutable_and_concatenates() -> None:
    head = build_script([Note("head"), OP.OP_1])
    tail = build_script([Note("tail"), OP.OP_VERIFY, OP.OP_1])
    joined = head + tail
    assert joined.raw == bytes([0x51, 0x69, 0x51])
    assert joined.notes == ((0, "head"), (1, "tail"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        joined.raw = b""  # type: ignore[misc]
    assert joined.script.hex() == "516951"  # the bsv-sdk Script


def test_size_limit_is_enforced() -> None:
    AnnotatedScript(b"\x61" * MAX_SCRIPT_BYTES).check_limits()
    with pytest.raises(ScriptLimitError):
        AnnotatedScript(b"\x61" * (MAX_SCRIPT_BYTES + 1)).check_limits()


def test_stack_tracks_depths_of_named_slots() -> None:
    stack = Stack(["a", "b", "c"])
    assert [stack.depth(n) for n in "abc"] == [2, 1, 0]
    assert stack.pick("c") == [OP.OP_DUP]
    assert stack.pick("c") == [OP.OP_OVER]
    assert stack.pick("a", as_name="a2") == [4, OP.OP_PICK]
    assert stack.depth("a2") == 0 and stack.depth("a") == 5
    assert stack.roll("b") == [4, OP.OP_ROLL]
    assert stack.names()[-1] == "b" and stack.depth("a") == 5


def test_stack_underflow_and_mistakes_fail_loudly() -> None:
    stack = Stack(["a"])
    with pytest.raises(ScriptError):
        stack.apply(2)
    with pytest.raises(ScriptError):
        stack.pop("b")
    with pytest.raises(ScriptError):
        stack.pop()
    with pytest.raises(ScriptError):
        stack.depth("a")
    with pytest.raises(ScriptError):
        Stack(["a", "a"])


def test_stack_model_generates_code_the_interpreter_agrees_with() -> None:
    # Sum a scattered selection of 200 pushed values by name; the interpreter must get the same total.
    values = [(i * 37) % 251 - 100 for i in range(200)]
    chosen = [3, 199, 150, 17, 0, 128, 64, 198]
    stack = Stack([f"v{i}" for i in range(200)])
    items: list = []
    for k, i in enumerate(chosen):
        items += stack.pick(f"v{i}")
        if k:
            items.append(OP.OP_ADD)
            stack.apply(2, ["sum"] if k == len(chosen) - 1 else [None])
    items += [sum(values[i] for i in chosen), OP.OP_NUMEQUALVERIFY]
    stack.apply(1, [])
    items += [OP.OP_DROP] * len(stack)  # clean stack: drop the inputs, leave one true value
    items.append(OP.OP_1)
    verify_spend(build_script(items), push_only_script(values))
