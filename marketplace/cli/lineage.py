"""`bounty models`: the model lineage with the value of the data (images bought, sats spent, held-out gain)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from marketplace.cli._output import JsonOption, friendly


@friendly
def models(plot: Annotated[Path | None, typer.Option(
               "--plot", help="Also write the lineage PNG here (it is refreshed beside the newest retrained "
                              "model anyway).")] = None,
           as_json: JsonOption = False) -> None:
    """Every model version: images bought for it, sats spent on them, held-out gain and sats per point gained."""
    from marketplace.errors import InvalidRequest
    from marketplace.lineage import model_lineage
    from marketplace.lineage_plot import plot_beside_newest_quietly, write_lineage_plot
    from marketplace.runtime import open_runtime

    rt = open_runtime()
    try:
        plot_beside_newest_quietly(rt)  # before listing, so the newest version names its fresh plot
        lineage = model_lineage(rt)
    finally:
        rt.close()
    if plot is not None:
        try:
            write_lineage_plot(lineage, plot)
        except OSError as exc:
            raise InvalidRequest(f"cannot write the plot to {plot}: {exc.strerror or exc}") from None
    if as_json:
        typer.echo(json.dumps(lineage.model_dump(), indent=2))
        return
    typer.echo(f"{'version':>7} {'images':>7} {'sats':>10} {'mnist':>7} {'crowd before':>12} {'after':>7} "
               f"{'gain':>7} {'sats/pt':>9}  model")
    for v in lineage.versions:
        typer.echo(f"{v.version:>7} {v.images_bought:>7} {v.sats_spent:>10} {_pct(v.mnist_test_accuracy):>7} "
                   f"{_pct(v.crowd_holdout_accuracy_before):>12} {_pct(v.crowd_holdout_accuracy_after):>7} "
                   f"{_num(v.holdout_gain_points):>7} {_num(v.sats_per_point):>9}  {v.weights_sha256[:12]}"
                   f"{' (deployed)' if v.deployed else ''}")
    for name, spend in (("pending", lineage.pending), ("total", lineage.totals)):
        typer.echo(f"{name:>7} {spend.images_bought:>7} {spend.sats_spent:>10}")
    if plot is not None:
        typer.echo(f"plot written to {plot}")


def _pct(value: float | None) -> str:
    return f"{100 * value:.2f}" if value is not None else "-"


def _num(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"
