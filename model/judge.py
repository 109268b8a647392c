"""The independent judge, run in pure numpy: a small CNN and a denoising autoencoder exported from Keras.

    image x (28x28, 0..1)
    CNN      conv 3x3 -> ReLU -> maxpool 2 -> conv 3x3 -> ReLU -> maxpool 2 -> dense -> ReLU -> 11 logits
             softmax over 10 digits and a class "not a digit"; p(digit) is that digit's share of the 11
    AE       784 -> h -> code -> h -> 784 (sigmoid), trained to restore digits from corrupted copies
    ink      sum of pixels / 255 (how many fully lit pixels' worth of ink)

A `Verdict` passes an image for its claimed digit when nothing is out of distribution (ood < 1, where ood is
the largest of: not-a-digit probability / its limit, reconstruction error / its limit, and the ink outside its
range, each 1.0 at its threshold) and the judge gives the claimed digit at least `min_probability`.

Artifact: ``judge.json`` (format, sha256 of the weights, config, thresholds, metrics) and ``weights.npz``
(float16); the weights' hash, and a policy hash over it and the thresholds, are checked on every load.
TensorFlow is never imported here.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model.errors import ArtifactError
from model.reference import as_pixels

FORMAT = 1
SCHEME = "judge-cnn-ae-v1"
METADATA_FILE = "judge.json"
WEIGHTS_FILE = "weights.npz"
DEFAULT_JUDGE = Path(__file__).resolve().parent / "judge_default"
GARBAGE_CLASS = 10
CNN_ARRAYS = ("conv1_kernel", "conv1_bias", "conv2_kernel", "conv2_bias", "dense_kernel", "dense_bias",
              "out_kernel", "out_bias")
AE_ARRAYS = tuple(f"ae{i}_{part}" for i in range(4) for part in ("kernel", "bias"))
ARRAYS = CNN_ARRAYS + AE_ARRAYS
JUDGE_DISAGREES = "judge_disagrees"
OUT_OF_DISTRIBUTION = "out_of_distribution"
REASONS = (JUDGE_DISAGREES, OUT_OF_DISTRIBUTION)
CHUNK = 256  # images per convolution batch: bounds the memory of the unfolded windows


@dataclass(frozen=True)
class Thresholds:
    """Chosen on the validation split (see model.judge_train.choose_thresholds)."""

    min_probability: float = 0.5  # the judge's probability for the claimed digit
    max_garbage: float = 0.5  # probability of "not a digit"
    max_reconstruction: float = 0.05  # autoencoder's mean squared error per pixel (0..1 scale)
    min_ink: float = 10.0  # pixels' worth of ink
    max_ink: float = 400.0


@dataclass(frozen=True)
class Verdict:
    claimed: int
    p_claimed: float
    top_digit: int
    p_top: float
    ood: float  # >= 1 means out of distribution
    reason: str | None  # None (passes), "judge_disagrees" or "out_of_distribution"

    @property
    def passed(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Assessment:
    """Everything the judge computes for a batch, as arrays (n,); `verdict(i)` is one image's verdict."""

    claimed: np.ndarray
    probabilities: np.ndarray  # (n, 11): ten digits and "not a digit"
    reconstruction: np.ndarray
    ink: np.ndarray
    ood: np.ndarray
    reason: np.ndarray  # object array of None / reason strings

    @property
    def passed(self) -> np.ndarray:
        return np.array([r is None for r in self.reason], dtype=bool)

    def verdict(self, i: int) -> Verdict:
        p = self.probabilities[i]
        top = int(np.argmax(p[:GARBAGE_CLASS]))
        return Verdict(claimed=int(self.claimed[i]), p_claimed=round(float(p[self.claimed[i]]), 6), top_digit=top,
                       p_top=round(float(p[top]), 6), ood=round(float(self.ood[i]), 6), reason=self.reason[i])


def _conv_relu(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras Conv2D(padding="valid", channels last) + ReLU: x (n, H, W, C), kernel (kh, kw, C, O)."""
    kh, kw, c, o = kernel.shape
    n, h, w = x.shape[0], x.shape[1] - kh + 1, x.shape[2] - kw + 1
    # unfold each window in Keras' kernel order (row, column, channel), then one matrix product
    cols = np.concatenate([x[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)], axis=3)
    return np.maximum(cols.reshape(n * h * w, kh * kw * c) @ kernel.reshape(kh * kw * c, o) + bias, 0).reshape(
        n, h, w, o)


def _max_pool(x: np.ndarray) -> np.ndarray:
    """Keras MaxPooling2D(2) with "valid" padding: odd edges dropped."""
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def weights_sha256(arrays: dict[str, np.ndarray]) -> str:
    """Hash of the scheme, each array's name, shape and float16 bytes, in a fixed order."""
    h = hashlib.sha256(SCHEME.encode())
    for name in ARRAYS:
        a = np.ascontiguousarray(arrays[name], dtype="<f2")
        h.update(f"{name}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def policy_sha256(weights_hash: str, thresholds: Thresholds) -> str:
    return hashlib.sha256(json.dumps({"weights_sha256": weights_hash, "thresholds": asdict(thresholds)},
                                     sort_keys=True).encode()).hexdigest()


@dataclass
class Judge:
    """A loaded judge: its float16 weights (computed in float32), thresholds and provenance."""

    arrays: dict[str, np.ndarray]
    thresholds: Thresholds
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    dataset_digest: str = ""

    def __post_init__(self) -> None:
        missing = [name for name in ARRAYS if name not in self.arrays]
        if missing:
            raise ArtifactError(f"a judge needs the arrays {', '.join(missing)}")
        self.arrays = {k: np.asarray(v, dtype=np.float16) for k, v in self.arrays.items() if k in ARRAYS}
        self._f32 = {k: v.astype(np.float32) for k, v in self.arrays.items()}

    @property
    def weights_sha256(self) -> str:
        return weights_sha256(self.arrays)

    @property
    def policy_sha256(self) -> str:
        """Hash of the weights' hash and the thresholds: what an operator publishes as the vetting policy."""
        return policy_sha256(self.weights_sha256, self.thresholds)

    @property
    def parameters(self) -> int:
        return int(sum(a.size for a in self.arrays.values()))

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """The CNN's 11 logits (n, 11) for images of 784 pixels 0..255 (one or a batch)."""
        x = as_pixels(pixels)
        if len(x) <= CHUNK:
            return self._logits(x)
        return np.concatenate([self._logits(x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)])

    def _logits(self, pixels: np.ndarray) -> np.ndarray:
        w = self._f32
        x = (pixels.astype(np.float32) / 255.0).reshape(-1, 28, 28, 1)
        x = _max_pool(_conv_relu(x, w["conv1_kernel"], w["conv1_bias"]))
        x = _max_pool(_conv_relu(x, w["conv2_kernel"], w["conv2_bias"]))
        x = np.maximum(x.reshape(len(x), w["dense_kernel"].shape[0]) @ w["dense_kernel"] + w["dense_bias"], 0)
        return np.asarray(x @ w["out_kernel"] + w["out_bias"])

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(n, 11): the probability of each digit 0..9, then of "not a digit"."""
        return softmax(self.logits(pixels))

    def reconstruct(self, pixels: np.ndarray) -> np.ndarray:
        """The autoencoder's restoration (n, 784) in 0..1."""
        w = self._f32
        x = as_pixels(pixels).astype(np.float32) / 255.0
        for i in range(3):
            x = np.maximum(x @ w[f"ae{i}_kernel"] + w[f"ae{i}_bias"], 0)
        return np.asarray(1.0 / (1.0 + np.exp(-(x @ w["ae3_kernel"] + w["ae3_bias"]))))

    def assess(self, pixels: np.ndarray, claimed: np.ndarray | int) -> Assessment:
        """Judge a batch of images, each claimed to show a digit (one claim for all, or one per image)."""
        x = as_pixels(pixels)
        claims = np.broadcast_to(np.asarray(claimed, dtype=np.int64), (len(x),)).copy()
        if claims.size and (claims.min() < 0 or claims.max() > 9):
            raise ValueError("a claimed digit is 0..9")
        t = self.thresholds
        p = self.probabilities(x)
        unit = x.astype(np.float32) / 255.0
        reconstruction = ((self.reconstruct(x) - unit) ** 2).mean(axis=1)
        ink = unit.sum(axis=1)
        ood = np.max(np.stack([p[:, GARBAGE_CLASS] / t.max_garbage, reconstruction / t.max_reconstruction,
                               t.min_ink / np.maximum(ink, 1e-6), ink / t.max_ink]), axis=0)
        agrees = p[np.arange(len(x)), claims] >= t.min_probability
        reason = np.where(ood >= 1.0, OUT_OF_DISTRIBUTION, np.where(agrees, "", JUDGE_DISAGREES)).astype(object)
        reason[reason == ""] = None
        return Assessment(claims, p, reconstruction, ink, ood, reason)

    def verdict(self, pixels: np.ndarray, claimed: int) -> Verdict:
        """One image's verdict for its claimed digit."""
        if as_pixels(pixels).shape[0] != 1:
            raise ValueError("verdict() judges one image; use assess() for a batch")
        return self.assess(pixels, claimed).verdict(0)

    def policy(self) -> dict[str, Any]:
        """What an operator publishes with a vetted bounty: the judge's hashes and thresholds."""
        return {"scheme": SCHEME, "judge_weights_sha256": self.weights_sha256, "policy_sha256": self.policy_sha256,
                "thresholds": asdict(self.thresholds)}

    def metadata(self) -> dict[str, Any]:
        return {"format": FORMAT, "scheme": SCHEME, "weights_sha256": self.weights_sha256,
                "policy_sha256": self.policy_sha256,
                "parameters": self.parameters, "thresholds": asdict(self.thresholds), "config": self.config,
                "metrics": self.metrics, "dataset_digest": self.dataset_digest}

    def save(self, directory: Path | str) -> Path:
        """Write the artifact; the metadata goes last so a crash never leaves a loadable half."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / METADATA_FILE).unlink(missing_ok=True)
        np.savez_compressed(directory / WEIGHTS_FILE, **self.arrays)
        (directory / METADATA_FILE).write_text(json.dumps(self.metadata(), indent=2, sort_keys=True) + "\n")
        return directory


def load_judge(directory: Path | str | None = None) -> Judge:
    """Load and verify a judge artifact (the shipped default when none is given)."""
    directory = Path(directory) if directory else DEFAULT_JUDGE
    try:
        meta = json.loads((directory / METADATA_FILE).read_text())
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise ArtifactError(f"{directory} is not a judge artifact: {Path(exc.filename).name} is missing") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"judge artifact {directory} is unreadable: {exc}") from None
    if meta.get("format") != FORMAT or meta.get("scheme") != SCHEME:
        raise ArtifactError(f"judge artifact {directory} has format {meta.get('format')}, scheme "
                            f"{meta.get('scheme')}; this version reads format {FORMAT}, scheme {SCHEME}")
    missing = [name for name in ARRAYS if name not in arrays]
    if missing:
        raise ArtifactError(f"judge artifact {directory} lacks the arrays {', '.join(missing)}")
    found = weights_sha256(arrays)
    if found != meta.get("weights_sha256"):
        raise ArtifactError(f"judge artifact {directory} was altered: its weights hash to {found}, "
                            f"its metadata says {meta.get('weights_sha256')}")
    try:
        thresholds = Thresholds(**meta.get("thresholds", {}))
    except TypeError as exc:
        raise ArtifactError(f"judge artifact {directory} has malformed thresholds: {exc}") from None
    if policy_sha256(found, thresholds) != meta.get("policy_sha256"):
        raise ArtifactError(f"judge artifact {directory} was altered: its thresholds do not match its policy hash")
    return Judge(arrays=arrays, thresholds=thresholds, config=meta.get("config", {}),
                 metrics=meta.get("metrics", {}), dataset_digest=meta.get("dataset_digest", ""))
