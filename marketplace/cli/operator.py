"""Operator commands: `bounty create | fund | withdraw | list | status | submissions | export`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from marketplace.cli._output import JsonOption, ModelOption, emit, emit_rows, fail, friendly


class Shape(StrEnum):  # marketplace.schema.BountyShape, named here so that `bounty --help` imports no database code
    POOL = "pool"
    CHAIN = "chain"


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


def _runtime() -> Any:  # Runtime, imported lazily so `bounty --help` stays quick
    from marketplace.runtime import open_runtime

    return open_runtime()


def within_supply(sats: int, name: str) -> None:
    """An amount no chain can hold is refused here, in words, before it reaches the database or the chain."""
    from marketplace.chain.local import MAX_SATOSHIS
    from marketplace.errors import InvalidRequest

    if sats > MAX_SATOSHIS:
        raise InvalidRequest(f"{name} is {sats:,} sats, more than the {MAX_SATOSHIS:,} sats (21 million BSV) "
                             "that can exist")


def create(
    digit: Annotated[list[int], typer.Option("--digit", help="Target digit; repeat for a set.")],
    payout: Annotated[int, typer.Option(min=1, help="Satoshis paid per accepted image.")],
    budget: Annotated[int, typer.Option(min=1, help="Satoshis locked in the contract.")],
    margin: Annotated[int, typer.Option(min=0, help="Minimum margin (top logit minus runner-up).")] = 0,
    max_fee: Annotated[int | None, typer.Option(min=0, help="Largest fee one submission may pay.")] = None,
    open_: Annotated[bool, typer.Option("--open", help="An open bounty: pays any image its classifier accepts, "
                                                        "with nobody's consent (default: vetted).")] = False,
    appeal_gap: Annotated[int | None, typer.Option(min=0, help="Vetted: how far an appeal's digit may trail the "
                                                               "classifier's first choice (default: the settings').")
                          ] = None,
    shape: Annotated[Shape, typer.Option(help="pool: prize outputs claimed side by side, the classifier's bytes "
                                              "paid once per image; chain: one contract output re-created by "
                                              "each paid image.")] = Shape.POOL,
    prizes: Annotated[int | None, typer.Option(min=1, max=500, help="Pool: the most prizes kept live at once "
                                                                   "(default: the settings' pool_prizes).")] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy and fund a bounty from the operator wallet (the dev chain's faucet funds it when needed).

    By default the bounty is vetted: each payment also needs the attestor's signature, given after the image
    passed the novelty check, the independent judge and the quotas. `--open` keeps the unvetted contract.
    By default it is a prize pool (see the README's figures for why); `--shape chain` is the covenant."""
    from marketplace.bounties import create_bounty
    from marketplace.errors import InvalidRequest

    if any(not 0 <= d <= 9 for d in digit):
        raise InvalidRequest("every --digit must be 0..9")
    within_supply(payout, "--payout")
    within_supply(budget, "--budget")
    from marketplace.schema import BountyMode, BountyShape

    mode = BountyMode.OPEN if open_ else BountyMode.VETTED
    from model.artifact import artifact_path

    created = create_bounty(_runtime(), digit, payout, budget, margin, max_fee, mode, appeal_gap,
                            BountyShape(shape.value), prizes, artifact_path(model) if model else None)
    emit(created.model_dump(), as_json, f"bounty created: {_cost(created)}")


def fund(bounty_id: Annotated[int, typer.Argument()], amount: Annotated[int, typer.Argument(min=1)],
         as_json: JsonOption = False) -> None:
    """Add AMOUNT sats: a chain bounty's contract migrates into an identical one holding more; a pool's
    reserve grows."""
    from marketplace.bounties import fund_bounty

    within_supply(amount, "AMOUNT")
    emit(fund_bounty(_runtime(), bounty_id, amount).model_dump(), as_json, "bounty funded")


def withdraw(bounty_id: Annotated[int, typer.Argument()], as_json: JsonOption = False) -> None:
    """Take the whole balance back to the operator wallet and close the bounty."""
    from marketplace.bounties import withdraw_bounty

    emit(withdraw_bounty(_runtime(), bounty_id).model_dump(), as_json, "bounty withdrawn")


def list_(as_json: JsonOption = False) -> None:
    """Every bounty with its live numbers."""
    from marketplace.bounties import list_bounties

    rows = [b.model_dump() for b in list_bounties(_runtime())]
    header = (f"{'id':>4} {'digits':<8} {'payout':>8} {'cost/image':>10} {'remaining':>10} {'images left':>11} "
              f"{'accepted':>8} {'fees spent':>10}  status")
    emit_rows("bounties", rows, as_json, header,
              lambda b: f"{b['id']:>4} {','.join(map(str, b['digits'])):<8} {b['payout_sats']:>8} "
                        f"{b['cost_sats_per_image']:>10} {b['remaining_sats']:>10} {b['images_left']:>11} "
                        f"{b['accepted_count']:>8} {b['fees_spent_sats']:>10}  {b['status']}")


def status(bounty_id: Annotated[int, typer.Argument()], as_json: JsonOption = False) -> None:
    """One bounty: terms, balance, accepted count, model and contract."""
    from marketplace.bounties import get_bounty

    view = get_bounty(_runtime(), bounty_id)
    emit(view.model_dump(), as_json, f"bounty {bounty_id}: {_cost(view)}")


def submissions(bounty_id: Annotated[int, typer.Argument()], as_json: JsonOption = False) -> None:
    """Every submission to a bounty with its status and txid."""
    from marketplace.bounties import list_submissions

    rows = [s.model_dump() for s in list_submissions(_runtime(), bounty_id)]
    emit_rows("submissions", rows, as_json, f"{'id':>5} {'status':<10} {'digit':>5} {'margin':>6} txid",
              lambda s: f"{s['id']:>5} {s['status']:<10} {s['digit']:>5} {s['margin']:>6} {s['txid_url'] or '-'}")


def export(bounty_id: Annotated[int, typer.Argument()],
           format_: Annotated[ExportFormat, typer.Option("--format", case_sensitive=False,
                                                         help="json: the whole export; csv: one row per submission."
                                                         )] = ExportFormat.JSON,
           output: Annotated[Path | None, typer.Option("--output", "-o", dir_okay=False,
                                                       help="Write to this file instead of standard output.")] = None,
           ) -> None:
    """Audit export: the terms, every deployment, every submission with its txid, verdict and pixels (JSON); or
    the submissions alone, one CSV row each under a header."""
    from marketplace.exports import export_csv, export_json

    write = export_csv if format_ is ExportFormat.CSV else export_json
    text = write(_runtime(), bounty_id)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        fail(f"cannot write the export to {output}: {exc.strerror or exc}", False)


def _cost(view: Any) -> str:
    """What one paid image costs a bounty and how many its balance pays for, in a sentence."""
    return (f"each paid image costs up to {view.cost_sats_per_image:,} sats ({view.payout_sats:,} payout + up to "
            f"{view.fee_sats_per_image:,} fee); the balance of {view.remaining_sats:,} sats pays for "
            f"{view.images_left:,} more; fees spent so far {view.fees_spent_sats:,} sats" + _pool(view))


def _pool(view: Any) -> str:
    if view.shape != "pool":
        return ""
    return (f"; a pool of {view.live_prizes} live prizes (at most {view.prizes}) and a reserve of "
            f"{view.reserve_sats:,} sats, which pays each new prize's payout, claim fee and creation fee")


def register(app: typer.Typer) -> None:
    for command, name in ((create, "create"), (fund, "fund"), (withdraw, "withdraw"), (list_, "list"),
                          (status, "status"), (submissions, "submissions"), (export, "export")):
        app.command(name)(friendly(command))
