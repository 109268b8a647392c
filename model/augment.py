"""Writing-style transforms for 28x28 digits, numpy only: stroke width, blur, slant, size, shift, rotation.

Honest contributors draw on a web canvas, with thicker and blurrier strokes than MNIST's pens. The judge is
trained on MNIST passed through these transforms, and `bounty judge eval` measures it on MNIST test digits
passed through them ("unlike MNIST"). Every function takes and returns float32 images (n, 28, 28) in 0..1,
and draws its randomness from the generator it is given, so a seed fixes the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDE = 28


@dataclass(frozen=True)
class Style:
    """Ranges of the random transforms (each drawn uniformly per image)."""

    rotate_degrees: float = 12.0
    shear: float = 0.3  # slant: x += shear * (y - centre)
    scale: tuple[float, float] = (0.8, 1.15)
    shift_pixels: float = 2.0
    thicken: float = 0.35  # share of images dilated once (a thicker pen) ...
    thin: float = 0.1  # ... and of images eroded once (a finer one)
    blur: float = 0.4  # share of images blurred, with sigma in blur_sigma
    blur_sigma: tuple[float, float] = (0.5, 1.1)


TRAINING_STYLE = Style()
# The "unlike MNIST" evaluation set: every image thick, blurred or slanted, more than the training mix.
CANVAS_STYLE = Style(rotate_degrees=10.0, shear=0.35, scale=(0.85, 1.1), shift_pixels=1.0, thicken=0.7, thin=0.0,
                     blur=0.8, blur_sigma=(0.6, 1.2))


def to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 images of any shape with 784 pixels each -> float32 (n, 28, 28) in 0..1."""
    return np.asarray(images, dtype=np.float32).reshape(-1, SIDE, SIDE) / 255.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float images in 0..1 -> uint8 (n, 784)."""
    return np.rint(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(-1, SIDE * SIDE)


def _neighbourhood(images: np.ndarray, reduce: np.ufunc) -> np.ndarray:
    """Max (dilation) or min (erosion) over each pixel's 3x3 cross, zeros beyond the edge."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    out = padded[:, 1:-1, 1:-1].copy()
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        out = reduce(out, padded[:, dy:dy + SIDE, dx:dx + SIDE])
    return out


def dilate(images: np.ndarray) -> np.ndarray:
    return _neighbourhood(images, np.maximum)


def erode(images: np.ndarray) -> np.ndarray:
    return _neighbourhood(images, np.minimum)


def blur(images: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Gaussian blur with one sigma per image (5 taps, separable), renormalised so the peak ink stays near 1."""
    taps = np.arange(-2, 3, dtype=np.float32)
    kernel = np.exp(-(taps[None, :] ** 2) / (2 * np.asarray(sigma, dtype=np.float32)[:, None] ** 2))
    kernel /= kernel.sum(axis=1, keepdims=True)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    rows = sum(kernel[:, k, None, None] * padded[:, k:k + SIDE, :] for k in range(5))
    out = sum(kernel[:, k, None, None] * rows[:, :, k:k + SIDE] for k in range(5))
    peak = np.maximum(out.reshape(len(out), -1).max(axis=1), 1e-6)
    before = images.reshape(len(images), -1).max(axis=1)
    return np.asarray(np.clip(out * (before / peak)[:, None, None], 0.0, 1.0), dtype=np.float32)


def affine(images: np.ndarray, matrices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Bilinear resampling: output pixel p reads input at matrices @ (p - centre) + centre + offsets."""
    n = len(images)
    centre = (SIDE - 1) / 2.0
    ys, xs = np.meshgrid(np.arange(SIDE, dtype=np.float32) - centre, np.arange(SIDE, dtype=np.float32) - centre,
                         indexing="ij")
    grid = np.stack([ys.ravel(), xs.ravel()])  # (2, 784)
    src = matrices @ grid + centre + offsets[:, :, None]  # (n, 2, 784)
    y0, x0 = np.floor(src[:, 0]), np.floor(src[:, 1])
    fy, fx = src[:, 0] - y0, src[:, 1] - x0
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1))).reshape(n, -1)
    width = SIDE + 2

    def at(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        inside = (yy >= -1) & (yy <= SIDE) & (xx >= -1) & (xx <= SIDE)
        flat = (np.clip(yy, -1, SIDE) + 1).astype(np.int64) * width + (np.clip(xx, -1, SIDE) + 1).astype(np.int64)
        return np.where(inside, np.take_along_axis(padded, flat, axis=1), 0.0)

    out = ((1 - fy) * (1 - fx) * at(y0, x0) + (1 - fy) * fx * at(y0, x0 + 1)
           + fy * (1 - fx) * at(y0 + 1, x0) + fy * fx * at(y0 + 1, x0 + 1))
    return out.reshape(n, SIDE, SIDE).astype(np.float32)


def random_geometry(n: int, style: Style, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per image: the inverse map of a rotation, slant and scale, and a shift."""
    angle = np.radians(rng.uniform(-style.rotate_degrees, style.rotate_degrees, n))
    shear = rng.uniform(-style.shear, style.shear, n)
    scale = rng.uniform(*style.scale, n)
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)  # (n, 2, 2), rows (y, x)
    slant = np.zeros((n, 2, 2))
    slant[:, 0, 0] = slant[:, 1, 1] = 1.0
    slant[:, 1, 0] = shear  # x_source = x + shear * y
    forward = rotation @ slant * scale[:, None, None]
    inverse = np.linalg.inv(forward).astype(np.float32)
    offsets = rng.uniform(-style.shift_pixels, style.shift_pixels, (n, 2)).astype(np.float32)
    return inverse, offsets


def restyle(images: np.ndarray, style: Style, rng: np.random.Generator, chunk: int = 4096) -> np.ndarray:
    """Apply random stroke width, blur and geometry to float images (n, 28, 28) in 0..1."""
    out = np.empty_like(images, dtype=np.float32)
    for start in range(0, len(images), chunk):
        x = np.asarray(images[start:start + chunk], dtype=np.float32)
        n = len(x)
        pen = rng.uniform(size=n)
        thick, thin = pen < style.thicken, (pen >= style.thicken) & (pen < style.thicken + style.thin)
        x = np.where(thick[:, None, None], dilate(x), x)
        x = np.where(thin[:, None, None], (x + erode(x)) / 2, x)  # MNIST strokes are 2-3 pixels: half an erosion
        blurred = rng.uniform(size=n) < style.blur
        sigma = rng.uniform(*style.blur_sigma, n)
        if blurred.any():
            x[blurred] = blur(x[blurred], sigma[blurred])
        matrices, offsets = random_geometry(n, style, rng)
        out[start:start + n] = affine(x, matrices, offsets)
    return out
