"""The value of the data: the images bought for each model version and the sats they cost add up to the books,
the held-out gain and sats per point follow from the runs' figures, and `bounty models` shows it, with a PNG."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select
from typer.testing import CliRunner

from marketplace.bounties import create_bounty
from marketplace.cli import app as cli
from marketplace.lineage import model_lineage
from marketplace.lineage_plot import write_lineage_plot
from marketplace.runtime import Runtime
from marketplace.schema import ModelVersion, Payout, RetrainRun, RetrainTrigger, TrainingImage
from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import classify
from tests.integration.test_retraining import as_trained
from tests.integration.test_service import PAYOUT, client, post, settle
from tests.support.settings import runtime_on
from workers.persistence import persist_accepted
from workers.retraining import retrain
from workers.retraining import run as retraining_run

MANUAL = RetrainTrigger.MANUAL
VERSION_KEYS = ["version", "weights_sha256", "parent_sha256", "deployed", "created_at", "images_bought", "sats_spent",
                "payout_sats", "fee_sats", "mnist_test_accuracy", "crowd_holdout_accuracy_before",
                "crowd_holdout_accuracy_after", "holdout_gain_points", "sats_per_point", "plot"]
SPEND_KEYS = ["images_bought", "sats_spent", "payout_sats", "fee_sats"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    # any challenger may replace the champion: these tests are about the books, not about learning
    runtime = runtime_on(request.param, request, tmp_path, retrain_fast=True, retrain_open_needs_review=False,
                         retrain_tolerance=1.0, retrain_class_tolerance=1.0, retrain_verify_images=2)
    yield runtime
    runtime.close()


@pytest.fixture
def stand_ins(shipped: ModelArtifact, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training replaced by challengers that classify exactly like the shipped model (every logit k higher, k = 1,
    2, ...: the same labels and margins, other weights), so a run deploys in seconds."""
    shifts = itertools.count(1)
    monkeypatch.setattr(retraining_run, "train_challenger", lambda *args, **kwargs: as_trained(replace(
        shipped, integer=replace(shipped.integer, b2=shipped.integer.b2 + next(shifts)))))


def buy(rt: Runtime, bounty_id: int, images: np.ndarray) -> list[int]:
    """Pay for `images` through the API, confirm them and keep them for training: their submission ids."""
    api = client(rt)
    sent = [post(api, bounty_id, image) for image in images]
    assert [s["code"] for s in sent] == [202] * len(images), sent
    settle(rt)
    for s in sent:
        assert persist_accepted(rt, s["id"]) is not None
    return [s["id"] for s in sent]


def books(rt: Runtime, submission_ids: list[int]) -> dict[str, int]:
    """What the books say these submissions were paid, and what their spends paid the miners."""
    with rt.session() as session:
        payouts = session.scalars(select(Payout).where(Payout.submission_id.in_(submission_ids))).all()
    assert len(payouts) == len(submission_ids)
    paid, fees = sum(p.satoshis for p in payouts), sum(p.fee_sats for p in payouts)
    return {"images_bought": len(submission_ids), "sats_spent": paid + fees, "payout_sats": paid, "fee_sats": fees}


def record_crowd_figures(rt: Runtime, model_version: int, before: float | None, after: float | None) -> None:
    """Set the crowd held-out figures the gate recorded in the run that made `model_version` (the stand-ins
    classify like the shipped model, so their own figures show no gain: these give the arithmetic something
    to do; the gate's own recording is tested in test_retraining.py)."""
    with rt.session() as session:
        run = session.scalar(select(RetrainRun).join(ModelVersion, ModelVersion.id == RetrainRun.new_model_id)
                             .where(ModelVersion.version == model_version))
        assert run is not None and run.metrics is not None
        run.metrics = {**run.metrics, "crowd_holdout_accuracy_before": before, "crowd_holdout_accuracy_after": after,
                       "crowd_holdout_images": 40}


def assert_png(path: str | Path) -> None:
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def test_lineage_figures_add_up_to_the_books(rt: Runtime, stand_ins: None, sevens: np.ndarray, mnist: Mnist,
                                             shipped: ModelArtifact) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 1_000_000)
    for_v2 = buy(rt, bounty.id, sevens[:5])
    assert retrain(rt, MANUAL, data=mnist).model_version == 2
    for_v3 = buy(rt, bounty.id, sevens[5:8])
    assert retrain(rt, MANUAL, data=mnist).model_version == 3
    not_yet_used = buy(rt, bounty.id, sevens[8:10])
    record_crowd_figures(rt, 2, before=0.80, after=0.85)
    record_crowd_figures(rt, 3, before=0.85, after=0.84)

    lineage = model_lineage(rt)

    v1, v2, v3 = lineage.versions
    assert [v.version for v in lineage.versions] == [1, 2, 3]
    assert (v2.parent_sha256, v3.parent_sha256) == (v1.weights_sha256, v2.weights_sha256)
    assert [v.deployed for v in lineage.versions] == [False, False, True]
    spend = [{key: getattr(v, key) for key in SPEND_KEYS} for v in (v1, v2, v3, lineage.pending)]
    assert spend == [books(rt, []), books(rt, for_v2), books(rt, for_v3), books(rt, not_yet_used)]
    everything = books(rt, for_v2 + for_v3 + not_yet_used)
    assert lineage.totals.model_dump() == everything
    assert everything["payout_sats"] == PAYOUT * 10 and everything["fee_sats"] > 0
    with rt.session() as session:  # the totals are every kept image's payout and fee, read straight from the books
        kept = select(TrainingImage.submission_id)
        paid, fees = session.execute(select(func.sum(Payout.satoshis), func.sum(Payout.fee_sats))
                                     .where(Payout.submission_id.in_(kept))).one()
    assert (lineage.totals.payout_sats, lineage.totals.fee_sats) == (paid, fees)

    # gain in points = (after - before) * 100; sats per point only for a gain
    assert (v2.crowd_holdout_accuracy_before, v2.crowd_holdout_accuracy_after) == (0.80, 0.85)
    assert v2.holdout_gain_points == pytest.approx(5.0)
    assert v2.sats_per_point == pytest.approx(v2.sats_spent / 5.0, abs=0.01)
    assert v3.holdout_gain_points == pytest.approx(-1.0) and v3.sats_per_point is None
    assert v1.holdout_gain_points is None and v1.sats_per_point is None and v1.crowd_holdout_accuracy_after is None

    # every version classifies like the shipped model, so each shows its MNIST test accuracy (the shipped
    # one's as measured when the first run judged it as the champion)
    labels, _ = classify(shipped.integer, mnist.x_test)
    accuracy = float(np.mean(labels == mnist.y_test))
    assert [v.mnist_test_accuracy for v in lineage.versions] == [pytest.approx(accuracy)] * 3

    # each run drew the lineage beside the model it deployed; the shipped model's package is left alone
    assert v1.plot is None and v2.plot is not None and v3.plot is not None
    assert Path(v3.plot).parent == Path(_artifact_path(rt, 3))
    assert_png(v3.plot)


def test_a_lineage_plot_that_cannot_be_drawn_does_not_fail_the_run(
        rt: Runtime, stand_ins: None, mnist: Mnist, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    create_bounty(rt, [7], PAYOUT, 100_000)

    def cannot_draw(*args: Any, **kwargs: Any) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr("marketplace.lineage_plot.write_lineage_plot", cannot_draw)
    result = retrain(rt, MANUAL, data=mnist)

    assert result.status == "succeeded" and result.model_version == 2
    assert "the lineage plot could not be written" in caplog.text
    assert model_lineage(rt).versions[-1].plot is None


def test_bounty_models_on_a_fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "home"))
    from marketplace.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    result = runner.invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)

    assert list(listed) == ["versions", "pending", "totals"]
    (only,) = listed["versions"]
    assert list(only) == VERSION_KEYS
    assert only["version"] == 1 and only["parent_sha256"] is None and only["deployed"] is False
    assert {key: only[key] for key in SPEND_KEYS} == dict.fromkeys(SPEND_KEYS, 0)
    assert only["holdout_gain_points"] is None and only["sats_per_point"] is None and only["plot"] is None
    assert listed["pending"] == listed["totals"] == dict.fromkeys(SPEND_KEYS, 0)

    created = json.loads(runner.invoke(cli, ["create", "--digit", "7", "--payout", "700", "--budget", "50000",
                                             "--open", "--json"]).stdout)
    assert created["model_version"] == 1
    assert json.loads(runner.invoke(cli, ["models", "--json"]).stdout)["versions"][0]["deployed"] is True

    plot = tmp_path / "plots" / "lineage.png"
    table = runner.invoke(cli, ["models", "--plot", str(plot)])
    assert table.exit_code == 0 and table.stdout.splitlines()[1].split()[:3] == ["1", "0", "0"]
    assert_png(plot)
    (tmp_path / "a-file").write_text("")
    refused = runner.invoke(cli, ["models", "--plot", str(tmp_path / "a-file" / "lineage.png")])
    assert refused.exit_code == 1 and refused.stderr.startswith("error: cannot write the plot to")
    get_settings.cache_clear()


def test_the_plot_draws_versions_nothing_measured(tmp_path: Path, rt: Runtime) -> None:
    """A lineage of only the shipped model (no accuracy known at all) still draws a valid PNG."""
    lineage = model_lineage(rt)
    assert lineage.versions[0].mnist_test_accuracy is None
    assert_png(write_lineage_plot(lineage, tmp_path / "nested" / "lineage.png"))


def _artifact_path(rt: Runtime, version: int) -> str:
    with rt.session() as session:
        path = session.scalar(select(ModelVersion.artifact_path).where(ModelVersion.version == version))
    assert path is not None
    return path
