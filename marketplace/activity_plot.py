"""The service's activity as a picture: submissions, payments, refusals by reason, fees and model versions over
time, read from the books, as one PNG for the operator pages.

matplotlib is imported only when the plot is drawn (nothing that merely imports this module pays for it), and
its object API is used rather than pyplot's global state, so two requests can draw at once.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select

from marketplace.runtime import Runtime
from marketplace.schema import ModelVersion, Payout, Submission, SubmissionStatus

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@dataclass
class Activity:
    """The events a plot needs, each with its time, in time order."""

    submissions: list[datetime] = field(default_factory=list)
    payments: list[tuple[datetime, int]] = field(default_factory=list)  # (when, fee sats)
    refusals: dict[str, list[datetime]] = field(default_factory=dict)  # reason -> when
    models: list[tuple[datetime, int]] = field(default_factory=list)  # (when, version)


def read_activity(rt: Runtime) -> Activity:
    activity = Activity()
    refusals: dict[str, list[datetime]] = defaultdict(list)
    with rt.session() as session:
        for created, status, reason in session.execute(
                select(Submission.created_at, Submission.status, Submission.reason).order_by(Submission.created_at)):
            activity.submissions.append(created)
            if status == SubmissionStatus.REJECTED:
                refusals[str(reason) if reason else "unknown"].append(created)
        activity.payments = [(when, fee) for when, fee in session.execute(
            select(Payout.created_at, Payout.fee_sats).order_by(Payout.created_at))]
        activity.models = [(when, version) for when, version in session.execute(
            select(ModelVersion.created_at, ModelVersion.version).order_by(ModelVersion.created_at))]
    activity.refusals = dict(sorted(refusals.items()))
    return activity


def activity_png(rt: Runtime) -> bytes:
    """Four panels over one time axis: submissions and payments (cumulative counts), refusals by reason
    (cumulative), fees paid (cumulative sats), the model version in force."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    activity = read_activity(rt)
    fig = Figure(figsize=(9, 9), layout="constrained")
    counts, refused, fees, models = fig.subplots(4, 1, sharex=True)

    def cumulative(ax: Axes, times: list[datetime], label: str, weights: list[int] | None = None) -> None:
        if times:
            totals = [sum(weights[:i + 1]) if weights else i + 1 for i in range(len(times))]
            ax.step(date2num(times), totals, where="post", label=label)

    cumulative(counts, activity.submissions, "submissions")
    cumulative(counts, [when for when, _ in activity.payments], "payments")
    counts.set_ylabel("count")
    counts.set_title("Submissions and payments", fontsize=10)
    for reason, times in activity.refusals.items():
        cumulative(refused, times, reason)
    refused.set_ylabel("count")
    refused.set_title("Refusals by reason", fontsize=10)
    cumulative(fees, [when for when, _ in activity.payments], "fees", [fee for _, fee in activity.payments])
    fees.set_ylabel("sats")
    fees.set_title("Fees paid", fontsize=10)
    if activity.models:
        models.step(date2num([when for when, _ in activity.models]), [v for _, v in activity.models], "o-",
                    where="post")
    models.set_ylabel("version")
    models.set_title("Model versions", fontsize=10)
    for ax in (counts, refused, fees, models):
        ax.grid(alpha=0.3)
        if ax.has_data() and ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8)
        elif not ax.has_data():
            ax.text(0.5, 0.5, "nothing yet", transform=ax.transAxes, ha="center", color="grey")
    for ax in (counts, refused, models):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts and versions are whole numbers
    models.xaxis_date()  # the x values are matplotlib's day numbers: label them as dates, as briefly as they allow
    dates = AutoDateLocator()
    models.xaxis.set_major_locator(dates)
    models.xaxis.set_major_formatter(ConciseDateFormatter(dates))
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90)
    return out.getvalue()


__all__ = ["Activity", "activity_png", "read_activity"]
