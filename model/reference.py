"""Integer inference: the exact specification of what the on-chain script computes.

Scheme "sparse-int-v1" (every quantity an integer, no rounding anywhere at run time):

    x        784 raw pixels, 0..255 (MNIST's own uint8 encoding, row-major)
    a_j      = sum_i x_i * w1[i, j] + b1[j]           w1 small signed ints (int4 by default), mostly zero
    h_j      = min(max(a_j, 0) // 2**shift[j], 255)   ReLU, a per-neuron power-of-two rescale, a clamp
    z_c      = sum_j h_j * w2[j, c] + b2[c]           w2 int8, one scale for the whole layer (folded away)
    label    = the first c with the largest z_c       ties go to the lowest index
    margin   = z_label - max_{c != label} z_c         0 when the top two are tied

Floor division equals Script's truncating OP_DIV here because ReLU makes the dividend >= 0.
The clamp bounds every logit, so the script can add all ten logits in fixed-width lanes of one number.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

SCHEME = "sparse-int-v1"
PIXELS = 784
HIDDEN_MAX = 255


@dataclass(frozen=True)
class IntegerModel:
    """The integer network: every array int64, shapes (784, H), (H,), (H,), (H, 10), (10,)."""

    w1: np.ndarray
    b1: np.ndarray
    shift: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @property
    def hidden_size(self) -> int:
        return int(self.w1.shape[1])

    @property
    def nonzero_weights(self) -> int:
        return int(np.count_nonzero(self.w1) + np.count_nonzero(self.w2))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"w1": self.w1, "b1": self.b1, "shift": self.shift, "w2": self.w2, "b2": self.b2}

    def sha256(self) -> str:
        """Hash of the scheme name and every integer, in a fixed order and encoding."""
        h = hashlib.sha256(SCHEME.encode())
        for name, array in self.arrays().items():
            h.update(name.encode())
            h.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
        return h.hexdigest()


def as_pixels(images: np.ndarray) -> np.ndarray:
    """Images of any shape (n, 28, 28), (n, 784), (28, 28) or (784,) -> int64 (n, 784), checked 0..255."""
    x = np.asarray(images)
    if x.size % PIXELS:
        raise ValueError(f"an image has {PIXELS} pixels; got an array of {x.size} values")
    x = x.reshape(-1, PIXELS).astype(np.int64)
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError("pixels must be integers 0..255")
    return x


def hidden(model: IntegerModel, images: np.ndarray) -> np.ndarray:
    """Hidden layer values h (n, H), each 0..255."""
    a = as_pixels(images) @ model.w1 + model.b1
    return np.minimum(np.maximum(a, 0) >> model.shift, HIDDEN_MAX)


def logits(model: IntegerModel, images: np.ndarray) -> np.ndarray:
    """Output logits z (n, 10), exact integers."""
    return hidden(model, images) @ model.w2 + model.b2


def classify(model: IntegerModel, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and margins (n,), as the script computes them."""
    z = logits(model, images)
    label = np.argmax(z, axis=1)  # numpy returns the first maximum: ties go to the lowest index
    top = z[np.arange(len(z)), label]
    others = z.copy()
    others[np.arange(len(z)), label] = np.iinfo(np.int64).min
    return label, top - others.max(axis=1)
