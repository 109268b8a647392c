"""How a run trains its challenger: the candidate recipes, and the choice between them on validation.

A recipe says how much the bought images weigh (each is repeated `weight` times among MNIST's 55,000) and
how many epochs the deployed network is tuned for, or that a network is trained anew. Every candidate
trains on MNIST's training split plus the bought images less a validation slice (one in
``retrain_validation_every`` of each digit); the choice is made on MNIST's validation split and that slice,
never on the held-out crowd images the gate judges with. The chosen recipe is then trained once more on all
the bought images. When no fine-tuned candidate reads the validation slice better than the champion,
fine-tuning has stopped helping and a from-scratch candidate joins (``retrain_scratch_when_stuck``).

Pure logic: the training itself happens in `workers.retraining.training`'s child process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from marketplace.settings import Settings
from model.config import FINETUNE, FINETUNE_FAST, TINY, TrainConfig, from_scratch

FLOAT_SLACK = 1e-9  # accuracies are ratios of integers: this absorbs float rounding, nothing more


@dataclass(frozen=True)
class Recipe:
    weight: int  # times each bought image is trained on
    epochs: int  # fine-tuning epochs (a scratch recipe has its own schedule: 0 here)
    scratch: bool = False
    fast: bool = False  # the seconds-long variants, for tests and the demo

    @property
    def name(self) -> str:
        kind = "scratch" if self.scratch else f"finetune {self.epochs} epochs"
        return f"{kind}, bought images x{self.weight}{' (fast)' if self.fast else ''}"

    def config(self, hidden: int, density: float) -> TrainConfig:
        """The training config for a champion `hidden` wide keeping `density` of layer 1: fine-tuning keeps
        its shape and sparsity; a scratch network gets the same width, pruned to the same density."""
        if self.scratch:
            return replace(TINY, hidden=hidden) if self.fast else from_scratch(TrainConfig(), hidden, round(density, 4))
        return replace(FINETUNE_FAST if self.fast else FINETUNE, hidden=hidden, qat_epochs=self.epochs)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "name": self.name}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Recipe:
        return cls(int(record["weight"]), int(record["epochs"]), bool(record["scratch"]), bool(record["fast"]))


def candidates(settings: Settings) -> list[Recipe]:
    """The recipes a run tries. ``retrain_fast`` tries one (the first weight, one short epoch);
    ``retrain_from_scratch`` trains anew with each weight instead of fine-tuning."""
    if settings.retrain_fast:
        return [Recipe(settings.retrain_weights[0], 1, scratch=settings.retrain_from_scratch, fast=True)]
    if settings.retrain_from_scratch:
        return [Recipe(w, 0, scratch=True) for w in settings.retrain_weights]
    return [Recipe(w, e) for e in settings.retrain_epochs for w in settings.retrain_weights]


@dataclass(frozen=True)
class Validation:
    """A model on the validation data: MNIST's validation split and the bought images' validation slice."""

    mnist: float
    crowd: float | None  # None: no validation slice (too few bought images)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def choose(champion: Validation, scored: list[Validation], mnist_drop: float) -> int:
    """The index of the best candidate: the highest crowd accuracy among those whose MNIST accuracy is
    within `mnist_drop` of the champion's (the gate's own allowance), ties broken by MNIST accuracy and then
    by order (the lighter recipe is listed first). When none is within, the best on MNIST."""
    if not scored:
        raise ValueError("no candidate to choose from")
    allowed = [i for i, v in enumerate(scored) if v.mnist + FLOAT_SLACK >= champion.mnist - mnist_drop]
    if not allowed:
        return max(range(len(scored)), key=lambda i: (scored[i].mnist, -i))
    return max(allowed, key=lambda i: (scored[i].crowd or 0.0, scored[i].mnist, -i))


def stuck(champion: Validation, best: Validation) -> bool:
    """Fine-tuning has stopped helping: its best candidate reads the validation slice no better than the
    champion. Without a slice there is nothing to say it would help, so never."""
    if champion.crowd is None or best.crowd is None:
        return False
    return best.crowd <= champion.crowd + FLOAT_SLACK


__all__ = ["Recipe", "Validation", "candidates", "choose", "stuck"]
