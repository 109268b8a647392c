"""Money made visible (issue 15): what a paid image costs a bounty and how many its balance still pays for, in
the API and the CLI, from the books; the dry run giving the verdict a submission gets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from marketplace.bounties import create_bounty
from marketplace.cli import app as cli
from marketplace.runtime import Runtime, open_runtime
from marketplace.schema import Payout
from model.artifact import ModelArtifact
from model.data import Mnist
from model.reference import classify
from tests.integration.test_service import PAYOUT, books_balance, client, post, settle
from tests.support.settings import settings_for


@pytest.fixture(scope="module")
def digits(sevens: np.ndarray, shipped: ModelArtifact, mnist: Mnist) -> dict[str, np.ndarray]:
    """Test images the shipped model reads as 7 (widest margin first) and as something else."""
    x = mnist.x_test.reshape(-1, 784)
    labels, _ = classify(shipped.integer, x)
    return {"sevens": sevens, "others": x[labels != 7]}


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = open_runtime(settings_for(tmp_path / "home"))
    yield runtime
    runtime.close()


def test_a_bounty_shows_the_cost_of_an_image_what_its_balance_pays_for_and_the_fees_spent(
        rt: Runtime, digits: dict[str, np.ndarray]) -> None:
    probe = create_bounty(rt, [7], PAYOUT, 100_000)  # the same terms price every bounty alike
    cost = PAYOUT + probe.max_fee_sats
    bounty = create_bounty(rt, [7], PAYOUT, 3 * cost + 100)
    api = client(rt)
    view = api.get(f"/bounties/{bounty.id}").json()
    assert view["fee_sats_per_image"] == bounty.max_fee_sats and 8_000 < view["fee_sats_per_image"] < 9_500
    assert view["cost_sats_per_image"] == cost and view["images_left"] == 3 and view["fees_spent_sats"] == 0
    paid = [post(api, bounty.id, image) for image in digits["sevens"][:3]]
    assert [p["code"] for p in paid] == [202] * 3
    settle(rt)
    view = api.get(f"/bounties/{bounty.id}").json()
    with rt.session() as session:
        fees = session.scalar(select(func.sum(Payout.fee_sats)).where(Payout.bounty_id == bounty.id))
    assert view["fees_spent_sats"] == fees == view["budget_sats"] - view["paid_sats"] - view["remaining_sats"]
    assert 3 * 8_000 < fees <= 3 * bounty.max_fee_sats  # each spend's real fee, within the contract's bound
    assert view["images_left"] == 0 and view["remaining_sats"] < cost  # and the contract agrees: nothing more pays
    assert post(api, bounty.id, digits["sevens"][3])["code"] == 409
    listed = {b["id"]: b for b in api.get("/bounties").json()}
    assert listed[bounty.id] == view
    books_balance(rt, bounty.id)


def test_the_cli_shows_the_cost_and_refuses_a_budget_that_cannot_pay_one_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNTY_HOME", str(tmp_path / "home"))
    from marketplace.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    refused = runner.invoke(cli, ["create", "--digit", "7", "--payout", "500", "--budget", "1000", "--open"])
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert refused.stderr.startswith("error: a budget of 1,000 sats cannot pay one image: each costs the 500-sat "
                                     "payout plus up to ") and refused.stderr.count("\n") == 1
    created = runner.invoke(cli, ["create", "--digit", "7", "--payout", "500", "--budget", "40000", "--open"])
    assert created.exit_code == 0, created.output
    assert created.stdout.startswith("bounty created: each paid image costs up to ")
    assert "the balance of 40,000 sats pays for 4 more" in created.stdout
    status = json.loads(runner.invoke(cli, ["status", "1", "--json"]).stdout)
    assert status["cost_sats_per_image"] == 500 + status["fee_sats_per_image"] and status["images_left"] == 4
    assert status["fees_spent_sats"] == 0
    table = runner.invoke(cli, ["list"]).stdout.splitlines()
    assert table[0].split() == ["id", "digits", "payout", "cost/image", "remaining", "images", "left", "accepted",
                                "fees", "spent", "status"]
    assert table[1].split() == ["1", "7", "500", str(status["cost_sats_per_image"]), "40000", "4", "0", "0", "active"]
    get_settings.cache_clear()
