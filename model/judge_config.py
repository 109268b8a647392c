"""The judge's training hyperparameters: a frozen record saved inside every judge artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class JudgeConfig:
    seed: int = 3  # initialisation, shuffling, augmentation and the garbage drawn for training
    split_seed: int = 1  # the same 5,000 held-out training images as the classifier's validation split
    validation_images: int = 5000  # thresholds are chosen on these (never on MNIST's test images)
    conv: tuple[int, int] = (32, 64)  # two 3x3 convolutions, each followed by 2x2 max-pooling
    dense: int = 128
    dropout: float = 0.25
    epochs: int = 6  # each epoch sees freshly restyled images
    learning_rate: float = 1e-3  # Adam, cosine decay to zero
    batch_size: int = 128
    garbage_share: float = 0.15  # extra images of the 11th class "not a digit" (blank, pixels, strokes, noise)
    stroke_share: float = 0.5  # ... of which random straight strokes (the family most like digits)
    salt_share: float = 0.15  # digits with a few pixels flipped to 0 or 255, label kept (sparse attacks)
    haze_share: float = 0.1  # digits with small random changes on every pixel, label kept (gradient attacks)
    transfer_examples: int = 500  # per attack (pixel flips, gradient) and margin: made from training digits
    transfer_margins: tuple[int, ...] = (0, 8000)  # against the public classifier, labelled with the true digit
    autoencoder: tuple[int, int] = (256, 32)  # denoising autoencoder 784-256-32-256-784 for the OOD score
    autoencoder_epochs: int = 3
    threshold_attacks: int = 150  # attacks of each kind crafted from validation images to choose thresholds
    train_images: int | None = None  # a subset for quick runs; None means all

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


TINY_JUDGE = JudgeConfig(conv=(8, 16), dense=32, epochs=2, learning_rate=3e-3, autoencoder=(64, 16),
                         autoencoder_epochs=1, train_images=3000, validation_images=1000, threshold_attacks=20,
                         transfer_examples=10)
