"""Training the judge, top to bottom: prepare (with attacks on the public classifier made from training digits)
-> train the CNN -> train the autoencoder -> export -> choose thresholds on the validation split (honest
digits, restyled digits and attacks crafted from them).

With model.train, the only modules of the project that import TensorFlow (through Keras). MNIST's test images
are never used here: `model.judge_eval` reports on them afterwards.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

from model.adversary import GENERATORS, KINDS, craft, gradient, pixel_flips  # noqa: E402
from model.artifact import ModelArtifact, load_artifact  # noqa: E402
from model.augment import CANVAS_STYLE, TRAINING_STYLE, restyle, to_uint8, to_unit  # noqa: E402
from model.data import Mnist  # noqa: E402
from model.judge import AE_ARRAYS, CNN_ARRAYS, GARBAGE_CLASS, Assessment, Judge, Thresholds  # noqa: E402
from model.judge_config import JudgeConfig  # noqa: E402

log = logging.getLogger(__name__)
CNN_LAYERS = ("conv1", "conv2", "dense", "out")
AE_LAYERS = ("ae0", "ae1", "ae2", "ae3")
# From 0.5: the claimed digit must be the judge's majority answer, never a runner-up.
PROBABILITY_GRID = tuple(round(p, 2) for p in np.arange(0.5, 0.96, 0.05))
HONEST_PLAIN_GOAL = 0.97  # thresholds must pass this share of validation digits for their true label ...
HONEST_STYLED_GOAL = 0.93  # ... and of restyled ("unlike MNIST") validation digits


@dataclass
class JudgeSplit:
    x_train: np.ndarray  # uint8 (n, 28, 28)
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass
class JudgeResult:
    judge: Judge
    cnn: keras.Model
    autoencoder: keras.Model
    split: JudgeSplit


def prepare(data: Mnist, config: JudgeConfig) -> JudgeSplit:
    """The classifier's split (same permutation of the 60k training images): validation held out first."""
    order = np.random.default_rng(config.split_seed).permutation(len(data.x_train))
    val, train = order[: config.validation_images], order[config.validation_images :]
    if config.train_images is not None:
        train = train[: config.train_images]
    return JudgeSplit(data.x_train[train], data.y_train[train], data.x_train[val],
                      data.y_train[val])


def few_pixels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two to twelve lit pixels scattered at random."""
    out = np.zeros((n, 784), dtype=np.uint8)
    count = rng.integers(2, 13, n)
    for k in range(12):
        lit = k < count
        out[np.flatnonzero(lit), rng.integers(0, 784, int(lit.sum()))] = rng.integers(64, 256, int(lit.sum()))
    return out


def garbage(n: int, rng: np.random.Generator, stroke_share: float = 0.5) -> np.ndarray:
    """Images of the class "not a digit": random strokes for `stroke_share` of them, the rest shared evenly by
    the other attack generators and a few scattered pixels."""
    others = [GENERATORS[k] for k in GENERATORS if k != "strokes"] + [few_pixels]
    strokes = rng.uniform(size=n) < stroke_share
    kind = np.where(strokes, -1, rng.integers(0, len(others), n))
    out = GENERATORS["strokes"](n, rng)
    for i, make in enumerate(others):
        chosen = np.flatnonzero(kind == i)
        if len(chosen):
            out[chosen] = make(len(chosen), rng)
    return out


def perturb(x: np.ndarray, rng: np.random.Generator, salt: float, haze: float) -> np.ndarray:
    """Digits (n, 28, 28) in 0..1 with, for a share `salt`, up to 12 pixels set to 0 or 1 and, for a share
    `haze`, every pixel moved by up to 0.1: the traces attacks on the public classifier leave."""
    n = len(x)
    flat = x.reshape(n, -1).copy()
    salted = rng.uniform(size=n) < salt
    rate = rng.uniform(1, 12, n)[:, None] / 784
    mask = salted[:, None] & (rng.uniform(size=flat.shape) < rate)
    flat = np.where(mask, rng.integers(0, 2, flat.shape).astype(np.float32), flat)
    hazed = rng.uniform(size=n) < haze
    amplitude = rng.uniform(0.02, 0.1, n)[:, None] * hazed[:, None]
    flat = np.clip(flat + amplitude * rng.choice([-1.0, 1.0], flat.shape), 0, 1)
    return flat.reshape(x.shape).astype(np.float32)


def transferred(split: JudgeSplit, config: JudgeConfig, classifier: ModelArtifact,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Attacks on the public classifier made from training digits (pixel flips and gradient steps, aimed at a
    random other digit, at each margin), labelled with the digit they were made from: so the judge learns to
    read through them. Only training images: validation keeps attacks the judge never saw."""
    images, labels = [], []
    for margin in config.transfer_margins:
        for attack in ("pixel_flips", "gradient"):
            pick = rng.choice(len(split.x_train), config.transfer_examples, replace=False)
            x, y = split.x_train[pick].reshape(-1, 784), split.y_train[pick].astype(np.int64)
            targets = (y + rng.integers(1, 10, len(y))) % 10
            if attack == "pixel_flips":
                adversarial, ok, _ = pixel_flips(classifier.integer, x, targets, margin)
            else:
                adversarial, ok, _ = gradient(classifier.float_weights, classifier.integer, x, targets, margin)
            images.append(adversarial[ok])
            labels.append(y[ok])
    return np.concatenate(images), np.concatenate(labels)


def epoch_data(split: JudgeSplit, config: JudgeConfig, rng: np.random.Generator,
               attacks: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One epoch: every training digit freshly restyled (some perturbed), garbage, and the transferred attacks
    (as they are: restyling would smooth away what makes them attacks), shuffled."""
    digits = perturb(restyle(to_unit(split.x_train), TRAINING_STYLE, rng), rng, config.salt_share, config.haze_share)
    junk = to_unit(garbage(int(config.garbage_share * len(digits)), rng, config.stroke_share))
    x = np.concatenate([digits, junk, to_unit(attacks[0])])
    y = np.concatenate([split.y_train.astype(np.int64), np.full(len(junk), GARBAGE_CLASS), attacks[1]])
    order = rng.permutation(len(x))
    return x[order, ..., None], y[order]


def build_cnn(config: JudgeConfig) -> keras.Model:
    c1, c2 = config.conv
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(c1, 3, activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(c2, 3, activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(config.dense, activation="relu", name="dense"),
        keras.layers.Dropout(config.dropout, seed=config.seed),
        keras.layers.Dense(GARBAGE_CLASS + 1, name="out"),
    ])


def build_autoencoder(config: JudgeConfig) -> keras.Model:
    hidden, code = config.autoencoder
    return keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(hidden, activation="relu", name="ae0"),
        keras.layers.Dense(code, activation="relu", name="ae1"),
        keras.layers.Dense(hidden, activation="relu", name="ae2"),
        keras.layers.Dense(784, activation="sigmoid", name="ae3"),
    ])


def _schedule(config: JudgeConfig, images: int, epochs: int) -> keras.optimizers.schedules.LearningRateSchedule:
    steps = int(np.ceil(images / config.batch_size)) * max(epochs, 1)
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)


def _verbose(quiet: bool) -> int:
    return 0 if quiet else 1 if sys.stdout.isatty() else 2


def train_cnn(split: JudgeSplit, config: JudgeConfig, rng: np.random.Generator, attacks: tuple[np.ndarray, np.ndarray],
              quiet: bool) -> keras.Model:
    model = build_cnn(config)
    per_epoch = int(len(split.x_train) * (1 + config.garbage_share)) + len(attacks[1])
    model.compile(keras.optimizers.Adam(_schedule(config, per_epoch, config.epochs)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    for epoch in range(config.epochs):
        x, y = epoch_data(split, config, rng, attacks)
        log.info("judge CNN epoch %d/%d on %d images", epoch + 1, config.epochs, len(x))
        model.fit(x, y, batch_size=config.batch_size, epochs=1, verbose=_verbose(quiet))
    return model


def train_autoencoder(split: JudgeSplit, config: JudgeConfig, rng: np.random.Generator, quiet: bool) -> keras.Model:
    """Denoising: restore restyled digits from copies with flipped pixels and haze."""
    model = build_autoencoder(config)
    model.compile(keras.optimizers.Adam(_schedule(config, len(split.x_train), config.autoencoder_epochs)),
                  keras.losses.BinaryCrossentropy())
    for epoch in range(config.autoencoder_epochs):
        clean = restyle(to_unit(split.x_train), TRAINING_STYLE, rng)
        noisy = perturb(clean, rng, salt=0.5, haze=0.5)
        log.info("judge autoencoder epoch %d/%d", epoch + 1, config.autoencoder_epochs)
        model.fit(noisy.reshape(-1, 784), clean.reshape(-1, 784), batch_size=config.batch_size, epochs=1,
                  verbose=_verbose(quiet))
    return model


def export(cnn: keras.Model, autoencoder: keras.Model) -> dict[str, np.ndarray]:
    """The Keras weights by name, as float16 (the precision the judge ships and runs at)."""
    arrays: dict[str, np.ndarray] = {}
    for model, layers, names in ((cnn, CNN_LAYERS, CNN_ARRAYS), (autoencoder, AE_LAYERS, AE_ARRAYS)):
        values = [a for layer in layers for a in model.get_layer(layer).get_weights()]
        arrays |= {name: np.asarray(v, dtype=np.float16) for name, v in zip(names, values, strict=True)}
    return arrays


def keras_models(judge: Judge, config: JudgeConfig) -> tuple[keras.Model, keras.Model]:
    """Keras models holding a judge's (float16) weights: what the numpy inference is checked against."""
    cnn, autoencoder = build_cnn(config), build_autoencoder(config)
    for model, layers, names in ((cnn, CNN_LAYERS, CNN_ARRAYS), (autoencoder, AE_LAYERS, AE_ARRAYS)):
        values = iter(names)
        for layer in layers:
            keras_layer = model.get_layer(layer)
            keras_layer.set_weights([judge.arrays[next(values)].astype(np.float32) for _ in keras_layer.weights])
    return cnn, autoencoder


@dataclass(frozen=True)
class _Scored:
    """Validation images assessed once with thresholds that pass everything; the probability is swept after."""

    plain: Assessment
    styled: Assessment
    attacks: dict[str, Assessment]


def _pass_rate(assessment: Assessment, min_probability: float, ood_limits: Thresholds) -> np.ndarray:
    p = assessment.probabilities
    t = ood_limits
    ood = np.max(np.stack([p[:, GARBAGE_CLASS] / t.max_garbage, assessment.reconstruction / t.max_reconstruction,
                           t.min_ink / np.maximum(assessment.ink, 1e-6), assessment.ink / t.max_ink]), axis=0)
    agrees = p[np.arange(len(p)), assessment.claimed] >= min_probability
    return (ood < 1.0) & agrees


def choose_thresholds(arrays: dict[str, np.ndarray], split: JudgeSplit, config: JudgeConfig,
                      classifier: ModelArtifact) -> tuple[Thresholds, dict[str, Any]]:
    """Ink and reconstruction limits from honest validation digits (plain and restyled); then the probability
    threshold with the fewest validation attacks let through plus honest digits refused (see below)."""
    rng = np.random.default_rng(config.seed + 1000)
    open_judge = Judge(arrays=arrays, thresholds=Thresholds(0.0, 1.0, np.inf, 0.0, np.inf))
    styled = to_uint8(restyle(to_unit(split.x_val), CANVAS_STYLE, rng))
    y = split.y_val.astype(np.int64)
    attacks = {kind: craft(kind, classifier, config.threshold_attacks, config.seed * 10 + i, images=split.x_val,
                           labels=y) for i, kind in enumerate(KINDS)}
    scored = _Scored(open_judge.assess(split.x_val, y), open_judge.assess(styled, y),
                     {k: open_judge.assess(a.images, a.claimed) for k, a in sorted(attacks.items())})
    honest_ink = np.concatenate([scored.plain.ink, scored.styled.ink])
    honest_error = np.concatenate([scored.plain.reconstruction, scored.styled.reconstruction])
    limits = Thresholds(
        min_probability=0.0, max_garbage=0.5,
        max_reconstruction=float(1.2 * np.quantile(honest_error, 0.995)),
        min_ink=float(0.7 * np.quantile(honest_ink, 0.001)), max_ink=float(1.3 * np.quantile(honest_ink, 0.999)))
    table = []
    for p in PROBABILITY_GRID:
        plain = float(_pass_rate(scored.plain, p, limits).mean())
        restyled = float(_pass_rate(scored.styled, p, limits).mean())
        let_through = int(sum(_pass_rate(a, p, limits).sum() for a in scored.attacks.values()))
        table.append({"min_probability": p, "plain": plain, "styled": restyled, "attacks_passed": let_through})
    # An attack let through costs the operator a payout; an honest digit refused costs a contributor one: the
    # threshold minimising the two shares, equally weighted, among those meeting the honest goals.
    total = sum(len(a) for a in attacks.values())
    feasible = [r for r in table if r["plain"] >= HONEST_PLAIN_GOAL and r["styled"] >= HONEST_STYLED_GOAL] or table[:1]
    best = min(feasible, key=lambda r: (r["attacks_passed"] / max(total, 1) + 1 - (r["plain"] + r["styled"]) / 2,
                                        r["min_probability"]))
    thresholds = Thresholds(**{**asdict(limits), "min_probability": float(best["min_probability"])})
    metrics = {
        "validation_images": len(y),
        "val_accuracy": float(np.mean(np.argmax(scored.plain.probabilities[:, :10], axis=1) == y)),
        "val_styled_accuracy": float(np.mean(np.argmax(scored.styled.probabilities[:, :10], axis=1) == y)),
        "val_honest_pass": best["plain"], "val_styled_pass": best["styled"],
        "val_attacks": {k: len(a) for k, a in sorted(attacks.items())},
        "val_attacks_passed": {k: int(_pass_rate(a, best["min_probability"], limits).sum())
                               for k, a in scored.attacks.items()},
        "probability_sweep": table,
    }
    return thresholds, metrics


def train_judge(data: Mnist, config: JudgeConfig, classifier: ModelArtifact | None = None,
                quiet: bool = False) -> JudgeResult:
    """Train, export and calibrate a judge against `classifier` (the shipped one by default)."""
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    split = prepare(data, config)
    classifier = classifier or load_artifact()
    attacks = transferred(split, config, classifier, rng)
    log.info("judge: %d attacks on the classifier made from training digits", len(attacks[1]))
    cnn = train_cnn(split, config, rng, attacks, quiet)
    autoencoder = train_autoencoder(split, config, rng, quiet)
    arrays = export(cnn, autoencoder)
    thresholds, metrics = choose_thresholds(arrays, split, config, classifier)
    log.info("judge thresholds %s; validation %s", thresholds, {k: v for k, v in metrics.items() if "sweep" not in k})
    judge = Judge(arrays=arrays, thresholds=thresholds, config=config.to_json(), metrics=metrics,
                  dataset_digest=data.digest)
    return JudgeResult(judge, cnn, autoencoder, split)
