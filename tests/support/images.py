"""Uploads made from MNIST digits."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def paper_png(pixels: np.ndarray, scale: int) -> bytes:
    """An MNIST digit (light ink on black) as a PNG of dark ink on light paper, `scale` times its size."""
    out = io.BytesIO()
    Image.fromarray(255 - pixels.reshape(28, 28)).resize((28 * scale, 28 * scale)).save(out, format="PNG")
    return out.getvalue()
