"""How a retraining run picks its recipe: on validation, within the gate's MNIST allowance, lightest first."""

from __future__ import annotations

import pytest

from marketplace.settings import Settings
from workers.retraining.recipe import Recipe, Validation, candidates, choose, stuck

CHAMPION = Validation(mnist=0.980, crowd=0.80)


def test_the_best_crowd_reader_within_the_mnist_allowance_is_chosen() -> None:
    scored = [Validation(0.981, 0.82), Validation(0.978, 0.90), Validation(0.976, 0.97)]
    assert choose(CHAMPION, scored, mnist_drop=0.003) == 1  # the third reads the crowd best but costs MNIST 0.4
    assert choose(CHAMPION, scored, mnist_drop=0.005) == 2
    assert choose(CHAMPION, scored, mnist_drop=0.0) == 0


def test_ties_go_to_mnist_then_to_the_lighter_recipe() -> None:
    assert choose(CHAMPION, [Validation(0.979, 0.9), Validation(0.980, 0.9)], mnist_drop=0.003) == 1
    assert choose(CHAMPION, [Validation(0.980, 0.9), Validation(0.980, 0.9)], mnist_drop=0.003) == 0


def test_with_none_within_the_allowance_the_best_on_mnist_is_chosen() -> None:
    assert choose(CHAMPION, [Validation(0.95, 0.99), Validation(0.96, 0.5)], mnist_drop=0.003) == 1
    with pytest.raises(ValueError):
        choose(CHAMPION, [], mnist_drop=0.003)


def test_without_a_validation_slice_mnist_decides() -> None:
    blind = Validation(0.980, None)
    assert choose(blind, [Validation(0.979, None), Validation(0.981, None)], mnist_drop=0.003) == 1
    assert not stuck(blind, Validation(0.970, None))  # no evidence that training anew would help


def test_fine_tuning_is_stuck_when_its_best_reads_the_slice_no_better_than_the_champion() -> None:
    assert stuck(CHAMPION, Validation(0.99, 0.80)) and stuck(CHAMPION, Validation(0.99, 0.70))
    assert not stuck(CHAMPION, Validation(0.97, 0.81))


def test_the_candidates_follow_the_settings() -> None:
    settings = Settings(_env_file=None, retrain_weights=(1, 5), retrain_epochs=(2, 4))  # type: ignore[call-arg]
    assert candidates(settings) == [Recipe(1, 2), Recipe(5, 2), Recipe(1, 4), Recipe(5, 4)]
    settings.retrain_from_scratch = True
    assert candidates(settings) == [Recipe(1, 0, scratch=True), Recipe(5, 0, scratch=True)]
    settings.retrain_fast = True  # seconds: one recipe
    assert candidates(settings) == [Recipe(1, 1, scratch=True, fast=True)]
    assert Recipe(5, 4).config(64, 0.15).qat_epochs == 4 and Recipe(5, 0, scratch=True).config(64, 0.15).epochs == 30
    for recipe in candidates(settings):
        assert Recipe.from_json(recipe.to_json()) == recipe


def test_a_recipe_keeps_the_champions_width_and_sparsity() -> None:
    tune = Recipe(5, 4).config(128, 0.049)
    assert tune.hidden == 128 and tune.densities == () and tune.epochs == 0  # the mask it starts from is kept
    scratch = Recipe(5, 0, scratch=True).config(128, 0.049)
    assert scratch.hidden == 128 and scratch.densities[0] == 0.5 and scratch.densities[-1] == 0.049
    assert Recipe(5, 0, scratch=True).config(64, 7525 / 50176).densities == (0.5, 0.35, 0.25, 0.2, 0.15)  # the seed's
    assert Recipe(1, 1, scratch=True, fast=True).config(96, 0.05).hidden == 96
