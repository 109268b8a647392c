"""A fingerprint of a 28x28 image that near copies share and other people's handwriting does not.

Each step removes one way to disguise a copy:

1. a 3x3 median filter: isolated changed pixels (salt and pepper, a few flips) disappear;
2. scaled so the strongest ink is 1, ink below `FLOOR` dropped: dimming, brightening, a grey background;
3. moved so the ink's centre of mass is in the middle: shifts of any number of pixels;
4. gradient orientations (4 unsigned bins, Sobel after a light blur), each orientation map blurred and pooled
   into 7x7 cells, square-rooted and L2-normalised: the shape of the strokes at a coarse scale, so a pixel's
   worth of shift, a thicker or fainter edge, or a few pixels changed move the vector little.

Thickening by a pixel moves every edge outward, which no fixed transform undoes exactly, so a query is also
fingerprinted after an erosion (`QUERY_VARIANTS`): the index compares the nearest of the variants.
The distance between two fingerprints is Euclidean, between 0 (same) and about 1.4 (nothing in common).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from marketplace.errors import NoveltyError
from marketplace.novelty._filters import erode, gaussian, median3, sobel

SIDE = 28
PIXELS = SIDE * SIDE
FLOOR = 0.2  # ink fainter than this fraction of the strongest pixel is background
RAMP = 0.8  # ... and ink from FLOOR to FLOOR + RAMP is stretched to 0..1 (a short ramp is nearly black and white)
EDGE_BLUR = 0.8  # sigma (pixels) before the gradient
ORIENTATIONS = 4  # unsigned gradient directions: 0, 45, 90, 135 degrees, linearly interpolated
CELL_BLUR = 2.0  # sigma (pixels) of each orientation map before pooling
CELL = 4  # pooling cell side: 28 / 4 = 7 cells a side
DIM = ORIENTATIONS * (SIDE // CELL) ** 2  # 196
CHUNK = 4096  # images fingerprinted at once (bounds memory at about 150 MB)
QUERY_VARIANTS: tuple[str | None, ...] = (None, "erode", "erode3")  # as given; a 4-neighbour and a 3x3 erosion


def as_images(pixels: np.ndarray | Sequence[int] | Sequence[Sequence[int]]) -> np.ndarray:
    """Check and convert one image (784 values or 28x28) or a batch (n x 784 or n x 28 x 28) of integers 0..255
    into uint8 of shape (n, 28, 28). Raises `NoveltyError` for anything else."""
    try:
        a = np.asarray(pixels)
    except (ValueError, TypeError) as exc:
        raise NoveltyError("pixels must be an array of integers 0..255") from exc
    if a.dtype == object or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise NoveltyError("pixels must be an array of integers 0..255")
    if a.size % PIXELS or a.size == 0 or a.shape[-1] not in (PIXELS, SIDE):
        raise NoveltyError(f"pixels must hold {PIXELS} values per image (28 x 28), got shape {a.shape}")
    if np.issubdtype(a.dtype, np.floating) and (not np.isfinite(a).all() or (a != np.round(a)).any()):
        raise NoveltyError("pixels must be whole numbers 0..255")
    if a.min() < 0 or a.max() > 255:
        raise NoveltyError("pixels must be in 0..255")
    return a.astype(np.uint8).reshape(-1, SIDE, SIDE)


def fingerprints(images: np.ndarray, variant: str | None = None) -> np.ndarray:
    """Fingerprints (n, DIM) float32 of checked images (n, 28, 28) uint8 (see `as_images`), in chunks."""
    out = np.empty((len(images), DIM), dtype=np.float32)
    for start in range(0, len(images), CHUNK):
        out[start:start + CHUNK] = _fingerprint(images[start:start + CHUNK], variant)
    return out


def query_fingerprints(images: np.ndarray) -> np.ndarray:
    """Fingerprints (n, len(QUERY_VARIANTS), DIM) of checked images under each query variant, computed as one
    batch (a single query costs one pass of numpy calls, not one per variant)."""
    out = np.empty((len(images), len(QUERY_VARIANTS), DIM), dtype=np.float32)
    step = max(1, CHUNK // len(QUERY_VARIANTS))
    for start in range(0, len(images), step):
        chunk = images[start:start + step].astype(np.float32) / 255.0
        variants = np.concatenate([_variant(chunk, v) for v in QUERY_VARIANTS])
        prints = _orientations(_prepare(variants))
        out[start:start + step] = prints.reshape(len(QUERY_VARIANTS), len(chunk), DIM).transpose(1, 0, 2)
    return out


def _fingerprint(images: np.ndarray, variant: str | None) -> np.ndarray:
    return _orientations(_prepare(_variant(images.astype(np.float32) / 255.0, variant)))


def _variant(x: np.ndarray, variant: str | None) -> np.ndarray:
    if variant is None:
        return x
    if variant == "erode":
        return erode(x, square=False)
    if variant == "erode3":
        return erode(x, square=True)
    raise NoveltyError(f"unknown fingerprint variant {variant!r}")


def _prepare(x: np.ndarray) -> np.ndarray:
    """Steps 1-3: grey images (n, 28, 28) float32 in 0..1 cleaned, intensity-normalised and centred."""
    x = median3(x)
    strongest = x.max(axis=(1, 2), keepdims=True)
    x = np.divide(x, strongest, out=np.zeros_like(x), where=strongest > 0)
    x = np.clip((x - FLOOR) / RAMP, 0, 1)
    return _centre(x)


def _orientations(x: np.ndarray) -> np.ndarray:
    """Step 4: pooled, blurred gradient-orientation maps, square-rooted and L2-normalised."""
    gy, gx = sobel(gaussian(x, EDGE_BLUR))
    magnitude = np.hypot(gx, gy)
    position = np.mod(np.arctan2(gy, gx), np.pi) / (np.pi / ORIENTATIONS)
    low = np.floor(position).astype(np.int64) % ORIENTATIONS
    weight = position - np.floor(position)
    cells = SIDE // CELL
    channels = []
    for k in range(ORIENTATIONS):
        share = np.where(low == k, 1 - weight, 0) + np.where((low + 1) % ORIENTATIONS == k, weight, 0)
        c = gaussian(magnitude * share, CELL_BLUR)
        channels.append(c.reshape(len(c), cells, CELL, cells, CELL).mean(axis=(2, 4)).reshape(len(c), -1))
    v = np.sqrt(np.maximum(np.concatenate(channels, axis=1), 0))
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 0).astype(np.float32)


def _centre(x: np.ndarray) -> np.ndarray:
    """Each image moved by whole pixels so its centre of mass lands in the middle (13.5, 13.5)."""
    mass = x.sum(axis=(1, 2))
    grid = np.arange(SIDE, dtype=np.float32)
    safe = np.where(mass > 0, mass, 1)
    cy = (x.sum(axis=2) * grid).sum(axis=1) / safe
    cx = (x.sum(axis=1) * grid).sum(axis=1) / safe
    pad = SIDE // 2
    oy = np.clip(np.rint(cy - 13.5).astype(np.int64), -pad, pad)
    ox = np.clip(np.rint(cx - 13.5).astype(np.int64), -pad, pad)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    rows = np.arange(SIDE)[None, :] + pad + oy[:, None]
    cols = np.arange(SIDE)[None, :] + pad + ox[:, None]
    return padded[np.arange(len(x))[:, None, None], rows[:, :, None], cols[:, None, :]]
