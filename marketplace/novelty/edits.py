"""Near-copy edits an attacker would try on a paid or MNIST image, for tests, benchmarks and the attack suite.

Each takes and returns uint8 images (n, 28, 28); none changes its input.
"""

from __future__ import annotations

import numpy as np

from marketplace.novelty._filters import dilate, shifted
from marketplace.novelty.fingerprint import SIDE, as_images


def shift(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Moved down by dy and right by dx pixels (negative: up, left); what leaves the frame is lost."""
    return shifted(as_images(images), -dy, -dx)


def flip(images: np.ndarray, count: int, rng: np.random.Generator, among: np.ndarray | None = None) -> np.ndarray:
    """`count` pixels of each image inverted (v -> 255 - v), chosen at random among the flat pixel indices `among`
    (default: all 784), different pixels for each image."""
    out = as_images(images).reshape(-1, SIDE * SIDE).copy()
    choices = np.arange(SIDE * SIDE) if among is None else np.asarray(among)
    for row in out:
        picked = rng.choice(choices, size=count, replace=False)
        row[picked] = 255 - row[picked]
    return out.reshape(-1, SIDE, SIDE)


def intensity(images: np.ndarray, scale: float = 1.0, offset: int = 0, gamma: float = 1.0) -> np.ndarray:
    """Each pixel v -> 255 * (v / 255) ** gamma * scale + offset, clipped to 0..255."""
    x = 255 * (as_images(images) / 255.0) ** gamma * scale + offset
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def thicken(images: np.ndarray, square: bool = False) -> np.ndarray:
    """Strokes thickened by a pixel: each pixel takes the brightest of its 4 neighbours (or 8 if `square`)."""
    return dilate(as_images(images), square)
