"""A model is its `models` row from registration on: a redeploy names it by id, and the watcher that books a
migration from the chain finds its model without compiling a contract for every registered one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bsv import Transaction
from sqlalchemy import select

from contracts.bounty import BountyContract
from marketplace.bounties import create_bounty, get_bounty, redeploy, withdraw_bounty
from marketplace.errors import NotFound
from marketplace.runtime import Runtime, open_runtime
from marketplace.schema import Bounty, BountyStatus, Deployment, ModelVersion
from marketplace.settings import Settings
from marketplace.watcher import Watcher
from model.artifact import ModelArtifact
from tests.support.models import register_variants

PAYOUT = 500


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = open_runtime(Settings(_env_file=None, home=tmp_path / "home"))  # type: ignore[call-arg]
    yield runtime
    runtime.close()


def test_a_redeploy_names_a_registered_model_and_the_watcher_compiles_only_what_the_output_could_be(
        rt: Runtime, shipped: ModelArtifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 40_000)
    _, third, _ = register_variants(rt, shipped, tmp_path, 3)  # versions 2, 3, 4
    compiled: list[int] = []  # versions of the models the watcher built a contract for
    real, watching = rt.new_contract, [False]

    def spy(model: ModelVersion, of: Bounty) -> BountyContract:
        if watching[0]:
            compiled.append(model.version)
        return real(model, of)

    watcher, broadcast = Watcher(rt), rt.chain.broadcast

    def broadcast_then_watch(tx: Transaction) -> object:
        """The watcher books the owner's transaction from the chain before the service records it."""
        result = broadcast(tx)
        watching[0] = True
        try:
            watcher.run_once()
        finally:
            watching[0] = False
        return result

    monkeypatch.setattr(rt, "new_contract", spy)
    monkeypatch.setattr(rt.chain, "broadcast", broadcast_then_watch)

    moved = redeploy(rt, bounty.id, third)

    with rt.session() as session:
        rows = session.execute(select(Deployment.version, Deployment.status, Deployment.model_id,
                                      Deployment.deploy_txid)
                               .where(Deployment.bounty_id == bounty.id).order_by(Deployment.version)).all()
    assert [(v, str(s), m, txid) for v, s, m, txid in rows][1:] == [(2, "active", third, moved.migrate_txid)]
    assert compiled == [4, 3]  # after the live model (compiled already), newest first until one matched: never 2
    assert get_bounty(rt, bounty.id).model_version == 3

    compiled.clear()
    withdraw_bounty(rt, bounty.id)
    assert compiled == []  # the withdrawal pays the owner: not a contract shape, nothing compiled
    with rt.session() as session:
        closed = session.get(Bounty, bounty.id)
        assert closed is not None and closed.status == BountyStatus.WITHDRAWN


def test_a_redeploy_to_an_unknown_model_is_refused_and_moves_nothing(rt: Runtime) -> None:
    bounty = create_bounty(rt, [7], PAYOUT, 40_000)
    with pytest.raises(NotFound, match="no model 99"):
        redeploy(rt, bounty.id, 99)
    with rt.session() as session:
        assert [str(d.status) for d in session.scalars(select(Deployment))] == ["active"]
