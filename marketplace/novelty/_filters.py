"""The few image filters the fingerprint needs, on batches (n, h, w) in numpy, with zeros beyond the edge."""

from __future__ import annotations

import numpy as np

_NEIGHBOURS_3X3 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
_NEIGHBOURS_CROSS = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)]


def shifted(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[:, i, j] = x[:, i + dy, j + dx], zero where that falls outside."""
    out = np.zeros_like(x)
    h, w = x.shape[1:]
    out[:, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = x[:, max(0, dy):h - max(0, -dy),
                                                                         max(0, dx):w - max(0, -dx)]
    return out


def median3(x: np.ndarray) -> np.ndarray:
    """3x3 median."""
    stack = np.stack([shifted(x, dy, dx) for dy, dx in _NEIGHBOURS_3X3])
    return np.partition(stack, 4, axis=0)[4]


def erode(x: np.ndarray, square: bool) -> np.ndarray:
    """Grey erosion (minimum) over the 3x3 square or the 4-neighbour cross."""
    return np.min([shifted(x, dy, dx) for dy, dx in (_NEIGHBOURS_3X3 if square else _NEIGHBOURS_CROSS)], axis=0)


def dilate(x: np.ndarray, square: bool) -> np.ndarray:
    """Grey dilation (maximum) over the 3x3 square or the 4-neighbour cross; for bool masks too."""
    return np.max([shifted(x, dy, dx) for dy, dx in (_NEIGHBOURS_3X3 if square else _NEIGHBOURS_CROSS)], axis=0)


def gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur, separable, kernel cut at 3 sigma."""
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    rows = sum(t * shifted(x, d, 0) for d, t in zip(range(-radius, radius + 1), taps, strict=True))
    out: np.ndarray = sum(t * shifted(rows, 0, d) for d, t in zip(range(-radius, radius + 1), taps, strict=True))
    return out


def sobel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d/dy, d/dx) by the Sobel operator."""
    smooth_x = shifted(x, 0, -1) + 2 * x + shifted(x, 0, 1)
    smooth_y = shifted(x, -1, 0) + 2 * x + shifted(x, 1, 0)
    return shifted(smooth_x, 1, 0) - shifted(smooth_x, -1, 0), shifted(smooth_y, 0, 1) - shifted(smooth_y, 0, -1)
