"""Training, top to bottom: prepare -> train dense -> prune layer 1 -> quantisation-aware tuning -> export.

The only module of the project that imports TensorFlow (through Keras).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
from keras import ops  # noqa: E402

from model.artifact import FloatWeights, ModelArtifact  # noqa: E402
from model.config import TrainConfig  # noqa: E402
from model.data import Mnist  # noqa: E402
from model.quantize import quantize  # noqa: E402
from model.reference import classify  # noqa: E402
from model.report import History, confusion_png, curves_png  # noqa: E402

log = logging.getLogger(__name__)


@dataclass
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def prepare(data: Mnist, config: TrainConfig) -> Split:
    """Shuffle the 60k training images with the seed and hold out a validation split."""
    order = np.random.default_rng(config.split_seed).permutation(len(data.x_train))
    val, train = order[: config.validation_images], order[config.validation_images :]
    if config.train_images is not None:
        train = train[: config.train_images]
    return Split(data.x_train[train], data.y_train[train], data.x_train[val],
                 data.y_train[val])


@keras.saving.register_keras_serializable("digit_bounty")
class SparseQuantDense(keras.layers.Layer):
    """Dense layer whose kernel is multiplied by a fixed 0/1 mask and, when `bits` is set,
    rounded per output neuron to signed integers (straight-through gradient)."""

    def __init__(self, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.bits = 0

    def build(self, input_shape: tuple[int, ...]) -> None:
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros")
        self.mask = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones", trainable=False)

    def effective_kernel(self) -> Any:
        w = self.kernel * self.mask
        if not self.bits:
            return w
        qmax = 2 ** (self.bits - 1) - 1
        scale = ops.maximum(ops.max(ops.abs(w), axis=0, keepdims=True) / qmax, 1e-8)
        q = ops.clip(ops.round(w / scale), -qmax - 1, qmax) * scale
        return w + ops.stop_gradient(q - w)

    def call(self, x: Any) -> Any:
        return ops.relu(ops.matmul(x, self.effective_kernel()) + self.bias)


def build(config: TrainConfig) -> keras.Model:
    layers: list[Any] = [keras.Input((28, 28, 1))]
    if config.shift_pixels:
        f = config.shift_pixels / 28
        layers.append(keras.layers.RandomTranslation(f, f, fill_mode="constant", seed=config.seed))
    if config.rotate_degrees:
        layers.append(keras.layers.RandomRotation(config.rotate_degrees / 360, fill_mode="constant", seed=config.seed))
    layers += [keras.layers.Flatten(), SparseQuantDense(config.hidden, name="hidden"),
               keras.layers.Dense(10, name="out")]
    return keras.Sequential(layers)


def _fit(model: keras.Model, split: Split, config: TrainConfig, epochs: int, lr: float, warmup: bool,
         quiet: bool = False) -> Any:
    steps = int(np.ceil(len(split.x_train) / config.batch_size)) * epochs
    warm = steps // epochs if warmup and epochs > 1 else 0
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warm else lr, max(steps - warm, 1), warmup_target=lr if warm else None, warmup_steps=warm)
    optimizer = (keras.optimizers.RMSprop(schedule) if config.optimizer == "rmsprop"
                 else keras.optimizers.Adam(schedule))
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model.fit(
        split.x_train[..., None] / 255.0, split.y_train, batch_size=config.batch_size, epochs=epochs,
        validation_data=(split.x_val[..., None] / 255.0, split.y_val),
        verbose=0 if quiet else 1 if sys.stdout.isatty() else 2)


def prune(layer: SparseQuantDense, density: float) -> None:
    """Keep the largest `density` share of layer-1 weights by magnitude (one global threshold)."""
    w = np.abs(layer.kernel.numpy() * layer.mask.numpy())
    keep = int(round(density * w.size))
    threshold = np.partition(w.ravel(), w.size - keep)[w.size - keep]
    layer.mask.assign((w >= threshold).astype("float32"))


def weights_of(model: keras.Model) -> FloatWeights:
    hidden, out = model.get_layer("hidden"), model.get_layer("out")
    w1 = hidden.kernel.numpy() * hidden.mask.numpy()  # the float weights; quantize() does the rounding itself
    return FloatWeights(w1=w1.astype(np.float32), b1=hidden.bias.numpy(), w2=out.kernel.numpy(), b2=out.bias.numpy())


@dataclass
class TrainResult:
    artifact: ModelArtifact
    history: History
    split: Split


def with_extra(split: Split, images: np.ndarray | None, labels: np.ndarray | None) -> Split:
    """The split with extra labelled images (accepted submissions) appended to its training part only:
    validation stays MNIST's own, so figures remain comparable between runs."""
    if images is None and labels is None:
        return split
    if images is None or labels is None:
        raise ValueError("extra images and extra labels go together")
    x, y = np.asarray(images), np.asarray(labels)
    if x.dtype != np.uint8 or x.size != len(x) * 784 or y.shape != (len(x),):
        raise ValueError(f"extra images must be uint8 (n, 28, 28) or (n, 784) with n labels; got {x.dtype} "
                         f"{x.shape} and labels {y.shape}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise ValueError("extra labels must be digits 0..9")
    return Split(np.concatenate([split.x_train, x.reshape(-1, 28, 28)]),
                 np.concatenate([split.y_train, y.astype(split.y_train.dtype)]), split.x_val, split.y_val)


def start_from(model: keras.Model, base: FloatWeights) -> None:
    """Continue from a trained network: its weights, and its zeros kept as the pruning mask."""
    hidden, out = model.get_layer("hidden"), model.get_layer("out")
    hidden.kernel.assign(base.w1)
    hidden.mask.assign((base.w1 != 0).astype("float32"))
    hidden.bias.assign(base.b1)
    out.kernel.assign(base.w2)
    out.bias.assign(base.b2)


def train(data: Mnist, config: TrainConfig, extra_images: np.ndarray | None = None,
          extra_labels: np.ndarray | None = None, base: FloatWeights | None = None,
          quiet: bool = False) -> TrainResult:
    """Train on MNIST's training split (less the validation images) plus any extra labelled images;
    from scratch, or, given `base`, fine-tuning that network (the stages with zero epochs are skipped).
    `quiet` keeps Keras' progress off stdout (the workers train inside other programs)."""
    if base is not None and base.w1.shape[1] != config.hidden:
        raise ValueError(f"continuing a {base.w1.shape[1]}-wide network needs hidden={base.w1.shape[1]} in the "
                         f"config, not {config.hidden}: fine-tuning keeps the network's shape")
    keras.utils.set_random_seed(config.seed)
    split = with_extra(prepare(data, config), extra_images, extra_labels)
    model, history = build(config), History()
    if base is not None:
        start_from(model, base)
    def fit(stage: str, epochs: int, rate: float, warmup: bool = False) -> None:
        history.add(stage, _fit(model, split, config, epochs, rate, warmup, quiet))

    if config.epochs:
        fit("dense", config.epochs, config.learning_rate, warmup=True)
    hidden, tune = model.get_layer("hidden"), config.tune_learning_rate
    for density in config.densities:
        prune(hidden, density)
        fit(f"prune {density:.0%}", config.prune_epochs, tune)
    if config.qat_epochs:
        hidden.bits = config.weight_bits
        fit(f"int{config.weight_bits}", config.qat_epochs, tune)
    floats = weights_of(model)
    integer = quantize(floats, split.x_train.reshape(-1, 784), bits=config.weight_bits)
    metrics = {
        "validation_images": len(split.y_val),
        "val_float_accuracy": float(np.mean(floats.predict(split.x_val) == split.y_val)),
        "val_int_accuracy": float(np.mean(classify(integer, split.x_val)[0] == split.y_val)),
    }
    log.info("validation: float %.4f, integer %.4f", metrics["val_float_accuracy"], metrics["val_int_accuracy"])
    artifact = ModelArtifact(float_weights=floats, integer=integer, config=config.to_json(), metrics=metrics,
                             dataset_digest=data.digest)
    return TrainResult(artifact, history, split)


def continue_training(data: Mnist, config: TrainConfig, base: ModelArtifact, quiet: bool = False) -> TrainResult:
    """`train` from `base`'s network, the artifact recording what it continued from (hash and recipe)."""
    result = train(data, config, base=base.float_weights, quiet=quiet)
    origin = {"continued_from": {"weights_sha256": base.weights_sha256, "config": base.config}}
    return replace(result, artifact=replace(result.artifact, config=result.artifact.config | origin))


def write_report(result: TrainResult, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    hidden = result.artifact.integer.hidden_size
    return [curves_png(result.history, directory / "curves.png", f"784-{hidden}-10"),
            confusion_png(result.artifact.integer, result.split.x_val, result.split.y_val, directory / "confusion.png")]
