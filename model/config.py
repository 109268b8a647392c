"""Training hyperparameters: a frozen record saved inside every artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 2  # initialisation, shuffling and augmentation
    split_seed: int = 1  # which 5,000 training images are held out: fixed, so seeds compare on the same split
    hidden: int = 64
    optimizer: str = "rmsprop"  # the seed article's choice; "adam" (at 2e-3) is the alternative tried
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 30  # dense training, cosine schedule with one warm-up epoch
    shift_pixels: int = 1  # augmentation: random shifts of up to this many pixels
    rotate_degrees: float = 10.0  # ... and rotations of up to this many degrees
    validation_images: int = 5000  # held out of the 60k training images to choose everything
    densities: tuple[float, ...] = (0.5, 0.35, 0.25, 0.2, 0.15)  # layer-1 pruning stages (share of weights kept)
    prune_epochs: int = 6  # fine-tuning after each pruning stage
    tune_learning_rate: float = 1e-3  # peak rate of every fine-tuning stage (cosine down to zero)
    weight_bits: int = 4  # layer-1 integer weights, signed
    qat_epochs: int = 6  # quantisation-aware fine-tuning at the end
    train_images: int | None = None  # a subset for quick runs; None means all

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


TINY = TrainConfig(epochs=1, densities=(0.3,), prune_epochs=1, qat_epochs=1, train_images=3000,
                   validation_images=1000, batch_size=128)

# Retraining: continue from the deployed network (its sparsity kept) with a short quantisation-aware tuning
# on MNIST plus the accepted images. FINETUNE_FAST does the same on a subset, for tests and the demo.
FINETUNE = TrainConfig(epochs=0, densities=(), qat_epochs=3, tune_learning_rate=2e-4)
FINETUNE_FAST = TrainConfig(epochs=0, densities=(), qat_epochs=1, tune_learning_rate=1e-4, train_images=8000)
