"""The lineage as a picture: accuracy over model versions, with the images bought for each, as a PNG.

matplotlib (Agg, no display) is imported only when a plot is drawn, so nothing that merely imports this module
pays for it. The operator pages draw it afresh on each request; a run writes it beside the model it deployed.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select

from marketplace.lineage import PLOT_FILE, model_lineage
from marketplace.runtime import Runtime
from marketplace.schema import ModelVersion
from marketplace.views import ModelLineage

log = logging.getLogger(__name__)


def write_lineage_plot(lineage: ModelLineage, path: Path | str) -> Path:
    """Draw MNIST test accuracy and the crowd held-out accuracy (the champion before, the version after) for
    every version, each version labelled with the images bought for it, into the PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    versions = [v.version for v in lineage.versions]

    def percent(values: list[float | None]) -> list[float]:
        return [100 * v if v is not None else float("nan") for v in values]  # NaN: a gap, nothing measured

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(versions, percent([v.mnist_test_accuracy for v in lineage.versions]), "o-", label="MNIST test")
    ax.plot(versions, percent([v.crowd_holdout_accuracy_before for v in lineage.versions]), "s", mfc="none",
            label="crowd held-out, the champion it replaced")
    ax.plot(versions, percent([v.crowd_holdout_accuracy_after for v in lineage.versions]), "s-",
            label="crowd held-out, this version")
    ax.set_xticks(versions, [f"v{v.version}\n{v.images_bought} img\n{v.sats_spent} sats" for v in lineage.versions],
                  fontsize=8)
    ax.set_xlim(versions[0] - 0.5, versions[-1] + 0.5)
    measured = [a for v in lineage.versions for a in (v.mnist_test_accuracy, v.crowd_holdout_accuracy_before,
                                                     v.crowd_holdout_accuracy_after) if a is not None]
    if measured:
        ax.margins(y=0.15)
    else:  # the shipped model alone, nothing judged yet: an empty but readable chart
        ax.set_ylim(80, 100)
        ax.text(0.5, 0.5, "no accuracy measured yet", transform=ax.transAxes, ha="center", color="grey")
    ax.set_xlabel("model version, the images bought for it and what they cost")
    ax.set_ylabel("accuracy of the integer model (%)")
    pending = lineage.pending
    ax.set_title(f"Model lineage: {len(versions)} version(s); not yet used: {pending.images_bought} images, "
                 f"{pending.sats_spent} sats", fontsize=10)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_beside_newest(rt: Runtime) -> Path | None:
    """Write (or refresh) the plot beside the newest version's artifact, when that artifact lives under the
    service's home (a retrained model); never into the installed package's shipped model. Its path, or None."""
    lineage = model_lineage(rt)
    newest = lineage.versions[-1]
    with rt.session() as session:
        directory = Path(session.scalar(select(ModelVersion.artifact_path)
                                        .where(ModelVersion.version == newest.version)) or "")
    if not directory.resolve().is_relative_to(Path(rt.settings.home).resolve()):
        return None
    return write_lineage_plot(lineage, directory / PLOT_FILE)


def plot_beside_newest_quietly(rt: Runtime) -> Path | None:
    """`plot_beside_newest` for a retraining run that has already deployed: a plot that cannot be drawn is logged,
    never a failed run."""
    try:
        return plot_beside_newest(rt)
    except Exception as exc:  # a warning, not a traceback: `bounty models` uses this too
        log.warning("the lineage plot could not be written: %s: %s", type(exc).__name__, exc)
        return None


__all__ = ["plot_beside_newest", "plot_beside_newest_quietly", "write_lineage_plot"]
