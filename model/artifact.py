"""Model artifacts: a directory with ``model.json`` (metadata) and ``weights.npz`` (float and integer weights).

Loading recomputes the sha256 of the integer weights and refuses an artifact whose hash
differs from its metadata, so a tampered or half-written artifact never reaches a contract.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import ArtifactError
from model.reference import SCHEME, IntegerModel

FORMAT = 1
METADATA_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"
DEFAULT_ARTIFACT = Path(__file__).resolve().parent / "default"
# Shipped artifacts by name: the default (the best on validation within 32,768 classifier bytes), the accurate
# one (within 64 KB) and the seed's 784-64-10 at 15%, which the project started from.
SHIPPED = {name: DEFAULT_ARTIFACT.parent / name for name in ("default", "accurate", "seed")}


@dataclass(frozen=True)
class FloatWeights:
    """The trained float network: relu(x/255 @ w1 + b1) @ w2 + b2."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    def logits(self, images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32).reshape(-1, 784) / 255.0
        return np.maximum(x @ self.w1 + self.b1, 0.0) @ self.w2 + self.b2

    def predict(self, images: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(images), axis=1)

    @property
    def hidden_size(self) -> int:
        return int(self.w1.shape[1])

    @property
    def density(self) -> float:
        """The share of layer-1 weights kept (nonzero)."""
        return float(np.count_nonzero(self.w1) / self.w1.size)


@dataclass(frozen=True)
class ModelArtifact:
    float_weights: FloatWeights
    integer: IntegerModel
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    dataset_digest: str = ""
    version: int = 1
    parent_sha256: str | None = None

    @property
    def weights_sha256(self) -> str:
        return self.integer.sha256()

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "scheme": SCHEME,
            "version": self.version,
            "weights_sha256": self.weights_sha256,
            "parent_sha256": self.parent_sha256,
            "nonzero_weights": self.integer.nonzero_weights,
            "dataset_digest": self.dataset_digest,
            "config": self.config,
            "metrics": self.metrics,
        }

    def save(self, directory: Path | str) -> Path:
        """Write the artifact; the metadata goes last so a crash never leaves a loadable half."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / METADATA_FILE).unlink(missing_ok=True)
        arrays = {f"float_{k}": v for k, v in asdict(self.float_weights).items()}
        arrays |= {f"int_{k}": v for k, v in self.integer.arrays().items()}
        np.savez_compressed(directory / WEIGHTS_FILE, **arrays)
        (directory / METADATA_FILE).write_text(json.dumps(self.metadata(), indent=2, sort_keys=True) + "\n")
        return directory


def artifact_path(name_or_path: Path | str | None) -> Path:
    """A shipped artifact's directory for its name (`default`, `accurate`, `seed`) unless a directory of that
    name is right here (write ./NAME to be sure); any other path as it is; None is the default."""
    if name_or_path is None:
        return DEFAULT_ARTIFACT
    path = Path(name_or_path)
    return SHIPPED[str(path)] if str(path) in SHIPPED and not path.is_dir() else path


def load_artifact(directory: Path | str | None = None) -> ModelArtifact:
    """Load and verify an artifact directory or a shipped one by name (the default when none is given)."""
    directory = artifact_path(directory or None)
    try:
        meta = json.loads((directory / METADATA_FILE).read_text())
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise ArtifactError(f"{directory} is not a model artifact: {Path(exc.filename).name} is missing") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"model artifact {directory} is unreadable: {exc}") from None
    if meta.get("format") != FORMAT or meta.get("scheme") != SCHEME:
        raise ArtifactError(f"model artifact {directory} has format {meta.get('format')}, scheme "
                            f"{meta.get('scheme')}; this version reads format {FORMAT}, scheme {SCHEME}")
    try:
        integer = IntegerModel(**{k: arrays[f"int_{k}"].astype(np.int64) for k in ("w1", "b1", "shift", "w2", "b2")})
        floats = FloatWeights(**{k: arrays[f"float_{k}"].astype(np.float32) for k in ("w1", "b1", "w2", "b2")})
    except KeyError as exc:
        raise ArtifactError(f"model artifact {directory} lacks the array {exc}") from None
    if integer.sha256() != meta.get("weights_sha256"):
        raise ArtifactError(f"model artifact {directory} was altered: its integer weights hash to "
                            f"{integer.sha256()}, its metadata says {meta.get('weights_sha256')}")
    return ModelArtifact(
        float_weights=floats,
        integer=integer,
        config=meta.get("config", {}),
        metrics=meta.get("metrics", {}),
        dataset_digest=meta.get("dataset_digest", ""),
        version=int(meta.get("version", 1)),
        parent_sha256=meta.get("parent_sha256"),
    )
