"""The crowd of issue 13: handwriting from writers outside MNIST, drawn the way the web page uploads it.

The writers: the UCI "Optical Recognition of Handwritten Digits" set (E. Alpaydin and C. Kaynak, Bogazici
University, 1998), in the copy scikit-learn bundles (`sklearn.datasets.load_digits`): 1,797 digits, its test
part, written by 13 people (the set's other 30 writers made its training part, which scikit-learn does not
ship), none of them MNIST's. NIST's form-processing programs cut each digit out of a scanned form and size-
normalised it to a 32x32 bitmap; each 4x4 block was then counted, giving an 8x8 image of values 0..16.

How an image becomes an upload (`canvas_png`). The web page (marketplace/web/index.html) lets a person draw
black strokes (#000, antialiased) on a 280x280 canvas filled white (#fff), and uploads `canvas.toBlob(...,
"image/png")`: an RGBA PNG, fully opaque. Here each 8x8 image is padded with one empty cell on every side
(people leave a margin; NIST's normalised bitmaps touch their box top and bottom), the ink counts are
upscaled smoothly (bicubic) to the whole 280x280 canvas, 28 canvas pixels per cell, and turned into what a
canvas draws: black ink where the upscaled coverage passes half (the outline of the original 32x32 pen
bitmap), with an antialiased edge a few pixels wide, on white. The service's own normalisation
(marketplace.images.to_mnist: invert, crop, scale to 20 pixels, centre the mass) does the rest, exactly as for
a drawing from the page.

The split (`split`): seeded and stratified per digit, two thirds to submit and one third held aside, never
submitted, used only to judge models.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

CANVAS = 280  # the page's <canvas id="pad" width="280" height="280">
PAD_CELLS = 1  # empty cells around the 8x8 image: the margin a person leaves on the pad
INK_LEVEL = 0.5  # upscaled coverage (0..1) from which the canvas is inked: the outline of the 32x32 bitmap
EDGE = 0.25  # coverage over which the ink fades from white to black: the antialiased edge of a stroke
SUBMIT_SHARE = 2 / 3
CREDIT = ("UCI Optical Recognition of Handwritten Digits (E. Alpaydin, C. Kaynak, 1998), via scikit-learn's "
          "load_digits: 1,797 digits by 13 writers")


@dataclass(frozen=True)
class Crowd:
    """The crowd, each image as the PNG the page would upload and as the pixels the service makes of it."""

    images8: np.ndarray  # (n, 8, 8) ink counts 0..16, as published
    labels: np.ndarray  # (n,) true digits
    pngs: tuple[bytes, ...]  # the uploads
    pixels: np.ndarray  # (n, 784) uint8: marketplace.images.to_mnist of each upload

    def __len__(self) -> int:
        return len(self.labels)


def canvas_png(image8: np.ndarray) -> bytes:
    """One 8x8 image (0..16) as the page's canvas would upload it: a 280x280 opaque RGBA PNG, black on white."""
    cells = 8 + 2 * PAD_CELLS
    coverage = np.zeros((cells, cells), dtype=np.float32)
    coverage[PAD_CELLS:PAD_CELLS + 8, PAD_CELLS:PAD_CELLS + 8] = np.asarray(image8, dtype=np.float32) / 16
    smooth = np.asarray(Image.fromarray(coverage, mode="F").resize((CANVAS, CANVAS), Image.Resampling.BICUBIC))
    ink = np.clip((smooth - INK_LEVEL) / EDGE + 0.5, 0, 1)
    gray = np.rint(255 * (1 - ink)).astype(np.uint8)
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


@cache
def load_crowd() -> Crowd:
    """Every image of the crowd, rendered and normalised (about two seconds)."""
    from sklearn.datasets import load_digits

    from marketplace.images import to_mnist

    digits = load_digits()
    images8 = np.asarray(digits.images, dtype=np.uint8)
    labels = np.asarray(digits.target, dtype=np.int64)
    pngs = tuple(canvas_png(im) for im in images8)
    pixels = np.stack([to_mnist(png).reshape(784) for png in pngs])
    return Crowd(images8, labels, pngs, pixels)


def split(labels: np.ndarray, seed: int, share: float = SUBMIT_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """Indices (submitted, held aside): per digit, a seeded shuffle, the first `share` of it submitted."""
    rng = np.random.default_rng(seed)
    submitted, held = [], []
    for digit in range(10):
        mine = rng.permutation(np.flatnonzero(labels == digit))
        cut = round(len(mine) * share)
        submitted.append(mine[:cut])
        held.append(mine[cut:])
    return np.sort(np.concatenate(submitted)), np.sort(np.concatenate(held))


__all__ = ["CANVAS", "CREDIT", "Crowd", "canvas_png", "load_crowd", "split"]
