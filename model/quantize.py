"""Float weights -> the integer network of model.reference (scheme sparse-int-v1).

Layer 1 keeps the float network's zeros and maps each neuron's weights onto signed
`bits`-bit integers with one scale per neuron. Its bias goes to the accumulator's scale,
and each neuron gets the smallest right shift that keeps its value within 0..255 on the
calibration images; half a step is added to the bias so the shift rounds to nearest.
Layer 2 absorbs every neuron's scale and shift and is rounded to int8 with one scale.
"""

from __future__ import annotations

import numpy as np

from model.artifact import FloatWeights
from model.reference import HIDDEN_MAX, IntegerModel, as_pixels


def quantize(weights: FloatWeights, calibration: np.ndarray, bits: int = 4) -> IntegerModel:
    """Export `weights`; `calibration` (n, 784) uint8 images choose the per-neuron shifts."""
    qmax = 2 ** (bits - 1) - 1
    w1 = weights.w1.astype(np.float64)
    scale = np.abs(w1).max(axis=0) / qmax  # per neuron: the float weight one integer step stands for
    scale[scale == 0] = 1.0
    q1 = np.clip(np.rint(w1 / scale), -qmax - 1, qmax).astype(np.int64)
    # a = x.q1 + b1 approximates (255 / scale) * (x/255 . w1 + b1)
    b1 = np.rint(weights.b1 * 255.0 / scale).astype(np.int64)
    peak = np.maximum(as_pixels(calibration) @ q1 + b1, 0).max(axis=0)
    shift = np.zeros_like(b1)
    while np.any((peak >> shift) > HIDDEN_MAX):
        shift += (peak >> shift) > HIDDEN_MAX
    b1 = b1 + np.where(shift > 0, 1 << np.maximum(shift - 1, 0), 0)
    # h_float ~= h_int * scale * 2**shift / 255: fold that into layer 2, then one int8 scale
    w2 = weights.w2.astype(np.float64) * (scale * 2.0**shift / 255.0)[:, None]
    step = np.abs(w2).max() / 127
    q2 = np.clip(np.rint(w2 / step), -127, 127).astype(np.int64)
    b2 = np.rint(weights.b2 / step).astype(np.int64)
    return IntegerModel(w1=q1, b1=b1, shift=shift.astype(np.int64), w2=q2, b2=b2)
