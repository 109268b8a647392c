"""A bounty's audit export as text: the whole export as JSON, or its submissions as CSV. The CLI's `bounty export`
and the operator pages both write these, so the two never disagree."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from marketplace.bounties import export_bounty
from marketplace.runtime import Runtime
from marketplace.views import SubmissionRecord


def export_json(rt: Runtime, bounty_id: int) -> str:
    """The terms, every deployment and every submission with its txid, verdict and pixels, indented."""
    return json.dumps(export_bounty(rt, bounty_id).model_dump(), indent=2) + "\n"


def export_csv(rt: Runtime, bounty_id: int) -> str:
    """The bounty's submissions, one CSV row each under a header of `SubmissionRecord`'s fields."""
    exported = export_bounty(rt, bounty_id).model_dump()
    return submissions_csv(exported["submissions"], list(SubmissionRecord.model_fields))


def submissions_csv(rows: list[dict[str, Any]], fields: list[str]) -> str:
    """One CSV row per submission under a header of `fields`, in order. A nested object (a vetted submission's
    `vetting`) becomes one column per figure, `vetting.judge.reason` and the like, in place of its field: as many as
    the rows hold, sorted. A list is written as JSON, a boolean as true/false, None as an empty cell."""
    flat = [{name: value for field in fields for name, value in _flatten(field, row.get(field))} for row in rows]
    columns: list[str] = []
    for field in fields:
        nested = sorted({name for cells in flat for name in cells if name.startswith(f"{field}.")})
        columns += nested or [field]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({name: _cell(cells.get(name)) for name in columns} for cells in flat)
    return out.getvalue()


def _flatten(name: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [pair for key, inner in value.items() for pair in _flatten(f"{name}.{key}", inner)]
    return [(name, value)]


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return json.dumps(value)
    return value


__all__ = ["export_csv", "export_json", "submissions_csv"]
