"""`bounty review ...`: look through accepted images before they train the next model."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from marketplace.cli._output import JsonOption, emit_rows, friendly

if TYPE_CHECKING:
    from marketplace.runtime import Runtime

review_app = typer.Typer(help="The review queue of accepted images (what the next retraining may use).",
                         no_args_is_help=True)


def _runtime() -> Runtime:
    from marketplace.runtime import open_runtime

    return open_runtime()


@review_app.command("list")
@friendly
def list_(status: Annotated[str | None, typer.Option(help="pending, approved or excluded")] = None,
          limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100, as_json: JsonOption = False) -> None:
    """Accepted images kept for retraining, oldest first."""
    from marketplace.errors import InvalidRequest
    from marketplace.review import list_images
    from marketplace.schema import ReviewStatus

    if status is not None and status not in {s.value for s in ReviewStatus}:
        raise InvalidRequest("--status is one of pending, approved, excluded")
    rows = list_images(_runtime(), ReviewStatus(status) if status else None, limit)
    emit_rows("images", rows, as_json, f"{'id':>6} {'bounty':>6} {'digit':>5} {'review':<9} note",
              lambda row: f"{row['id']:>6} {row['bounty_id']:>6} {row['label']:>5} {row['review']:<9} "
                          + (f"copy of {row['duplicate_of']}" if row["duplicate_of"] else
                             "held out" if row["holdout"] else ""))


def _set(image_ids: list[int], status: str, as_json: bool) -> None:
    from marketplace.review import set_review
    from marketplace.schema import ReviewStatus

    rows = set_review(_runtime(), image_ids, ReviewStatus(status))
    typer.echo(json.dumps({"images": rows}, indent=2) if as_json else f"{status} {len(rows)} image(s)")


@review_app.command("approve")
@friendly
def approve(image_ids: Annotated[list[int], typer.Argument(help="Training image ids.")],
            as_json: JsonOption = False) -> None:
    """Approve images for training."""
    _set(image_ids, "approved", as_json)


@review_app.command("exclude")
@friendly
def exclude(image_ids: Annotated[list[int], typer.Argument(help="Training image ids.")],
            as_json: JsonOption = False) -> None:
    """Exclude images from training for good."""
    _set(image_ids, "excluded", as_json)


@review_app.command("appeals")
@friendly
def appeals(as_json: JsonOption = False) -> None:
    """Appeals that passed vetting and wait for your decision (with BOUNTY_APPEALS_NEED_REVIEW)."""
    from marketplace.submissions import appeals_awaiting_review

    rows = [view.model_dump() for view in appeals_awaiting_review(_runtime())]
    emit_rows("appeals", rows, as_json, f"{'id':>6} {'bounty':>6} {'claim':>5} {'read':>5} {'margin':>7}  pay to",
              lambda row: f"{row['id']:>6} {row['bounty_id']:>6} {row['claimed_digit']:>5} {row['digit']:>5} "
                          f"{row['margin']:>7}  {row['recipient_address']}")


def _decide(submission_ids: list[int], approve: bool, as_json: bool) -> None:
    from marketplace.submissions import decide_appeals

    rows = [view.model_dump() for view in decide_appeals(_runtime(), submission_ids, approve)]
    emit_rows("submissions", rows, as_json, f"{'id':>6} {'status':<10} txid or reason",
              lambda row: f"{row['id']:>6} {row['status']:<10} {row['txid'] or row['reason']}")


@review_app.command("approve-appeal")
@friendly
def approve_appeal(submission_ids: Annotated[list[int], typer.Argument(help="Submission ids of held appeals.")],
                   as_json: JsonOption = False) -> None:
    """Pay held appeals now (the attestor co-signs; the contract still checks the runner-up rule)."""
    _decide(submission_ids, True, as_json)


@review_app.command("refuse-appeal")
@friendly
def refuse_appeal(submission_ids: Annotated[list[int], typer.Argument(help="Submission ids of held appeals.")],
                  as_json: JsonOption = False) -> None:
    """Refuse held appeals: they end rejected (refused_on_review) and nothing is paid."""
    _decide(submission_ids, False, as_json)
