"""The classifier script against the numpy reference, through bsv-sdk's real interpreter.

The reference (``model.reference.classify``) is the specification: every spend here claims the
reference's label and margin and must validate; wrong claims and malformed unlocking scripts must not.
"""

from __future__ import annotations

import numpy as np
import pytest
from bsv.script.script import Script

from contracts.classifier import (
    ClassifierScript,
    compile_classifier,
    pixel_pushes,
    unlocking_pixels,
    verify_label_script,
)
from contracts.errors import ScriptError, ScriptLimitError
from contracts.interpreter import script_label, verify_images, verify_spend
from contracts.script import MAX_OPS, MAX_SCRIPT_BYTES, MAX_SCRIPT_NUM_BYTES, encode_item, push_only_script
from model.artifact import load_artifact
from model.data import Mnist
from model.reference import IntegerModel, classify, logits

BORDER_PIXELS = 67  # MNIST has 67 pixels that are zero in every training image; no weights there


def synthetic_model(seed: int = 0, density: float = 0.15, hidden: int = 64) -> IntegerModel:
    """Random sparse int4 layer 1 (no weights on a border band), int8 layer 2, shifts 0..6."""
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-8, 8, size=(784, hidden))
    w1[w1 == 0] = 1
    w1 *= rng.random((784, hidden)) < density
    w1[:BORDER_PIXELS] = 0
    b1 = rng.integers(-3000, 1000, size=hidden)
    shift = rng.choice(7, size=hidden, p=[0.05, 0.05, 0.1, 0.1, 0.2, 0.25, 0.25])
    w2 = rng.integers(-128, 128, size=(hidden, 10))
    b2 = rng.integers(-5000, 5000, size=10)
    return IntegerModel(*(a.astype(np.int64) for a in (w1, b1, shift, w2, b2)))


@pytest.fixture(scope="session")
def mnist_test(mnist: Mnist) -> tuple[np.ndarray, np.ndarray]:
    return mnist.x_test, mnist.y_test


@pytest.fixture(scope="session")
def model() -> IntegerModel:
    return synthetic_model()


@pytest.fixture(scope="session")
def compiled(model: IntegerModel) -> ClassifierScript:
    return compile_classifier(model)


def _spend(compiled: ClassifierScript, pushes: list[int | bytes], check_margin: bool = True) -> None:
    verify_spend(verify_label_script(compiled, check_margin=check_margin), push_only_script(pushes))


def _with_tie(model: IntegerModel, image: np.ndarray, a: int, b: int) -> IntegerModel:
    """A copy of ``model`` whose logits for ``image`` tie exactly between classes a and b (b2 moved)."""
    z = logits(model, image)[0]
    b2 = model.b2.copy()
    b2[b] += z[a] - z[b]
    return IntegerModel(model.w1, model.b1, model.shift, model.w2, b2)


def test_agrees_with_reference_on_mnist(compiled: ClassifierScript, mnist_test: tuple) -> None:
    images, labels = mnist_test
    _, margins = classify(compiled.model, images)
    closest = np.argsort(margins, kind="stable")[:40]  # the hardest cases: top two logits nearly equal
    chosen = np.concatenate([np.arange(200), closest])
    assert margins[closest].min() < margins[:200].min()
    seen: list[int] = []
    result = verify_images(compiled, images[chosen], labels[chosen], progress=lambda done, total: seen.append(done))
    assert seen == list(range(1, len(chosen) + 1))
    assert result["images"] == len(chosen)
    assert result["agree"] == len(chosen)  # label AND margin equal the reference on every image
    assert result["locking_script_bytes"] == len(verify_label_script(compiled, check_margin=True))
    assert result["ms_per_image"] > 0


@pytest.mark.parametrize("tie", ["top has the lower index", "top has the higher index", "three-way"])
def test_exact_ties_go_to_the_lowest_class(model: IntegerModel, mnist_test: tuple, tie: str) -> None:
    images = mnist_test[0][:100]
    ranked = np.argsort(-logits(model, images), axis=1, kind="stable")
    wanted = ranked[:, 0] > ranked[:, 1] if tie == "top has the higher index" else ranked[:, 0] < ranked[:, 1]
    k = int(np.flatnonzero(wanted)[0])
    image = images[k]
    top, second, third = (int(c) for c in ranked[k, :3])
    tied = _with_tie(model, image, top, second)  # raise the runner-up's bias until it ties the top
    if tie == "three-way":
        tied = _with_tie(tied, image, top, third)
    label, margin = classify(tied, image)
    contenders = [top, second] + ([third] if tie == "three-way" else [])
    assert margin[0] == 0 and label[0] == min(contenders)
    compiled = compile_classifier(tied)
    assert verify_images(compiled, images[[k, k + 1, k + 2]])["agree"] == 3
    _spend(compiled, [*pixel_pushes(compiled, image), int(label[0]), 0])
    with pytest.raises(ScriptError):
        _spend(compiled, [*pixel_pushes(compiled, image), max(contenders), 0])


def test_wrong_claims_fail(compiled: ClassifierScript, mnist_test: tuple) -> None:
    images, _ = mnist_test
    labels, margins = classify(compiled.model, images[:3])
    for image, label, margin in zip(images[:3], labels, margins, strict=True):
        pixels = pixel_pushes(compiled, image)
        _spend(compiled, [*pixels, int(label), int(margin)])
        for wrong in (int(label) + 1) % 10, (int(label) + 9) % 10:
            with pytest.raises(ScriptError):
                _spend(compiled, [*pixels, wrong, int(margin)])
            with pytest.raises(ScriptError):
                _spend(compiled, [*pixels, wrong], check_margin=False)
        with pytest.raises(ScriptError):
            _spend(compiled, [*pixels, int(label), int(margin) + 1])
        assert script_label(compiled, image) == label


def _bad_pushes(compiled: ClassifierScript, image: np.ndarray, case: str) -> list[int | bytes]:
    pushes: list[int | bytes] = list(pixel_pushes(compiled, image))
    shallowest, deepest = len(pushes) - 1, 0  # most-used pixel, and a pixel no weight reads
    if case == "783 pixels":
        pushes.pop()
    elif case == "785 pixels":
        pushes.append(0)
    elif case == "256 on a weighted pixel":
        pushes[shallowest] = 256
    elif case == "256 on an unweighted pixel":
        pushes[deepest] = 256
    elif case == "-1 on a weighted pixel":
        pushes[shallowest] = -1
    elif case == "-1 on an unweighted pixel":
        pushes[deepest] = -1
    elif case == "32768 on a weighted pixel":
        pushes[shallowest] = 32768  # too wide for the two-byte range check
    elif case == "-32767 on a weighted pixel":
        pushes[shallowest] = -32767
    elif case == "2**40 on a weighted pixel":
        pushes[shallowest] = 2**40
    elif case == "non-minimal number on a weighted pixel":
        pushes[shallowest] = bytes([7, 0])  # 7 as two bytes: a minimal push of a non-minimal number
    elif case == "non-minimal number on an unweighted pixel":
        pushes[deepest] = bytes([7, 0])
    elif case == "negative zero on a weighted pixel":
        pushes[shallowest] = b"\x80"
    elif case == "negative zero on an unweighted pixel":
        pushes[deepest] = b"\x80"
    return pushes


MALFORMED = [
    "783 pixels", "785 pixels",
    "256 on a weighted pixel", "256 on an unweighted pixel", "-1 on a weighted pixel", "-1 on an unweighted pixel",
    "32768 on a weighted pixel", "-32767 on a weighted pixel", "2**40 on a weighted pixel",
    "non-minimal number on a weighted pixel", "non-minimal number on an unweighted pixel",
    "negative zero on a weighted pixel", "negative zero on an unweighted pixel",
]


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_unlocking_fails(compiled: ClassifierScript, mnist_test: tuple, case: str) -> None:
    image = mnist_test[0][0]
    label, margin = (int(v[0]) for v in classify(compiled.model, image))
    assert compiled.model.w1[compiled.order[0]].any() == 0  # the deepest pixel really has no weights
    with pytest.raises(ScriptError) as failure:
        _spend(compiled, [*_bad_pushes(compiled, image, case), label, margin])
    assert failure.value.reason


def test_non_minimal_push_of_a_pixel_fails(compiled: ClassifierScript, mnist_test: tuple) -> None:
    image = mnist_test[0][0].reshape(-1).copy()
    image[compiled.order[-1]] = 17  # the last push: minimally 0x01 0x11
    label, margin = (int(v[0]) for v in classify(compiled.model, image))
    locking = verify_label_script(compiled, check_margin=True)
    pixels = pixel_pushes(compiled, image)
    head = b"".join(encode_item(p) for p in pixels[:-1])
    claims = encode_item(label) + encode_item(margin)
    verify_spend(locking, Script(head + encode_item(17) + claims))
    with pytest.raises(ScriptError) as failure:
        verify_spend(locking, Script(head + bytes([0x4C, 1, 17]) + claims))  # OP_PUSHDATA1 for one byte
    assert "minimal" in (failure.value.reason or "")


def test_unlocking_script_is_push_only_in_compiler_order(compiled: ClassifierScript, mnist_test: tuple) -> None:
    image = mnist_test[0][0]
    script = unlocking_pixels(compiled, image)
    assert script.is_push_only()
    assert len(script.chunks) == 784
    assert sorted(compiled.order) == list(range(784))
    uses = np.count_nonzero(compiled.model.w1, axis=1)[list(compiled.order)]
    assert np.all(np.diff(uses) >= 0)  # most-used pixels pushed last, so they sit shallowest


def test_limits_and_report(compiled: ClassifierScript) -> None:
    report = compiled.report()
    assert report["locking_script_bytes"] == len(compiled.code) <= MAX_SCRIPT_BYTES
    assert report["opcodes"] == compiled.code.ops <= MAX_OPS
    assert report["max_number_bytes"] <= MAX_SCRIPT_NUM_BYTES
    assert report["lane_bits"] == 24
    assert report["nonzero_weights"] == compiled.model.nonzero_weights
    assert sum(report["breakdown_bytes"].values()) == report["locking_script_bytes"]
    assert compiled.code.max_push_number_bytes() <= report["max_number_bytes"]
    text = str(compiled.code)  # annotated assembly a reviewer can follow
    assert "# neuron 0" in text and "OP_PICK" in text and "# range-check" in text


def test_oversized_model_is_refused() -> None:
    # A dense 784x160 layer needs about 600 KB of script: over the 500 KB policy limit.
    with pytest.raises(ScriptLimitError):
        compile_classifier(synthetic_model(seed=3, density=1.0, hidden=160))


def test_degenerate_neurons_are_folded_exactly(mnist_test: tuple) -> None:
    # Neurons with no weights (constant), neurons nothing reads (zero w2 rows) and saturated ones.
    base = synthetic_model(seed=5, hidden=12)
    w1, w2, b1 = base.w1.copy(), base.w2.copy(), base.b1.copy()
    w1[:, 0] = 0
    b1[0] = 5000
    w1[:, 1] = 0
    w2[2] = 0
    b1[3] = 10**7  # always clamped at 255
    model = IntegerModel(w1, b1, base.shift, w2, base.b2)
    images = mnist_test[0][:30]
    assert verify_images(compile_classifier(model), images)["agree"] == 30


def test_chronicle_opcodes_agree(model: IntegerModel, mnist_test: tuple) -> None:
    compiled = compile_classifier(model, chronicle=True)
    assert compiled.locking_script_bytes < compile_classifier(model).locking_script_bytes
    assert verify_images(compiled, mnist_test[0][:30])["agree"] == 30


# The shipped artifacts, each with its byte budget and the test accuracy it must reach on chain.
SHIPPED_BUDGETS = {"default": (32_768, 0.982), "accurate": (65_536, 0.985)}


@pytest.mark.parametrize("name", SHIPPED_BUDGETS)
def test_shipped_model_agrees(name: str, mnist_test: tuple) -> None:
    compiled = compile_classifier(load_artifact(name).integer)
    images, labels = mnist_test
    _, margins = classify(compiled.model, images)
    chosen = np.concatenate([np.arange(200), np.argsort(margins, kind="stable")[:20]])  # and the closest calls
    result = verify_images(compiled, images[chosen], labels[chosen])
    assert result["agree"] == len(chosen)
    assert compiled.locking_script_bytes <= SHIPPED_BUDGETS[name][0] <= MAX_SCRIPT_BYTES


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED_BUDGETS)
def test_all_10000_test_images_agree_on_chain(name: str, mnist: Mnist) -> None:
    """The final figure: on-chain accuracy of each shipped model over the whole MNIST test set."""
    artifact, data = load_artifact(name), mnist
    result = verify_images(artifact.integer, data.x_test, data.y_test)
    labels, _ = classify(artifact.integer, data.x_test)
    assert result["agree"] == 10_000
    assert result["script_accuracy"] == float(np.mean(labels == data.y_test)) >= SHIPPED_BUDGETS[name][1]
