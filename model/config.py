"""Training hyperparameters: a frozen record saved inside every artifact."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 2  # initialisation, shuffling and augmentation
    split_seed: int = 1  # which 5,000 training images are held out: fixed, so seeds compare on the same split
    hidden: int = 64  # the seed article's 784-64-10; the defaults of this record are the seed's network
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


SEED_NETWORK = TrainConfig()  # 784-64-10, 15% of layer 1 kept: the network the project started from
STAGES = 5  # pruning stages from scratch, as in the seed's schedule
FIRST_DENSITY = 0.5  # the first stage keeps half of layer 1
CONTINUED_STAGES = 3  # pruning stages when a trained network is pruned further


def pruning_schedule(density: float, stages: int = STAGES) -> tuple[float, ...]:
    """Layer-1 densities for training from scratch: `stages` steps from half of the weights down to `density`,
    evenly spaced on a log scale (the seed's 15% keeps the seed's own steps)."""
    _check(density, stages)
    if density >= FIRST_DENSITY or stages == 1:
        return (density,)
    if density == SEED_NETWORK.densities[-1] and stages == STAGES:
        return SEED_NETWORK.densities
    ratio = (density / FIRST_DENSITY) ** (1 / (stages - 1))
    return tuple(round(FIRST_DENSITY * ratio**k, 4) for k in range(stages - 1)) + (density,)


def continued_schedule(current: float, density: float, stages: int) -> tuple[float, ...]:
    """Layer-1 densities for pruning a trained network further, from its `current` density (excluded) to
    `density` in `stages` steps evenly spaced on a log scale."""
    _check(density, stages)
    if density >= current:
        raise ValueError(f"the network already keeps {current:.2%} of layer 1: prune to less than that, "
                         f"not {density:.2%}")
    ratio = (density / current) ** (1 / stages)
    return tuple(round(current * ratio**k, 4) for k in range(1, stages)) + (density,)


def from_scratch(base: TrainConfig, hidden: int, density: float, stages: int = STAGES) -> TrainConfig:
    """`base`'s recipe for a 784-`hidden`-10 network pruned to `density` of layer 1 in `stages` stages."""
    if hidden < 1:
        raise ValueError(f"the hidden layer needs at least one neuron; got {hidden}")
    return replace(base, hidden=hidden, densities=pruning_schedule(density, stages))


def continued(base: TrainConfig, hidden: int, current: float, density: float | None,
              stages: int = CONTINUED_STAGES) -> TrainConfig:
    """`base`'s recipe for continuing a trained network (its width `hidden`, its layer-1 density `current`):
    no dense training; pruned further to `density` in `stages` stages (None: sparsity kept), then tuned."""
    densities = () if density is None else continued_schedule(current, density, stages)
    return replace(base, hidden=hidden, epochs=0, densities=densities)


def _check(density: float, stages: int) -> None:
    if not 0 < density <= 1:
        raise ValueError(f"a layer-1 density is a share of weights kept, in (0, 1]; got {density}")
    if stages < 1:
        raise ValueError(f"a pruning schedule needs at least one stage; got {stages}")


TINY = TrainConfig(epochs=1, densities=(0.3,), prune_epochs=1, qat_epochs=1, train_images=3000,
                   validation_images=1000, batch_size=128)

# Retraining: continue from the deployed network (its sparsity kept) with a short quantisation-aware tuning
# on MNIST plus the accepted images. FINETUNE_FAST does the same on a subset, for tests and the demo.
FINETUNE = TrainConfig(epochs=0, densities=(), qat_epochs=3, tune_learning_rate=2e-4)
FINETUNE_FAST = TrainConfig(epochs=0, densities=(), qat_epochs=1, tune_learning_rate=1e-4, train_images=8000)
