"""Attacks on the shipped integer classifier by someone holding its public weights (numpy only).

Every attack returns images the integer model (model.reference, what the contract computes) classifies as the
claimed digit with at least the given margin, i.e. images an open bounty for that digit pays:

- ``pixel_flips``: greedy: flip the one pixel (to 0 or 255) that raises the target's margin most, repeat;
- ``gradient``: iterative sign steps along the float network's gradient of the target's margin, each step
  rounded to integers 0..255, until the integer model agrees;
- garbage: ``blank`` (a uniform canvas), ``one_pixel``, ``strokes`` (random straight lines), ``noise``;
  kept only when the integer model pays for them (the claimed digit is its answer).

Deterministic given the seed (`craft(..., seed=...)`). These feed the attack suite in tests and the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.artifact import FloatWeights, ModelArtifact
from model.reference import HIDDEN_MAX, PIXELS, IntegerModel, as_pixels, classify

ADVERSARIAL = ("pixel_flips", "gradient")
GARBAGE = ("blank", "one_pixel", "strokes", "noise")
KINDS = ADVERSARIAL + GARBAGE


@dataclass(frozen=True)
class Attacks:
    """Images (uint8 (n, 784)) the public classifier pays as `claimed`; `source` is the true digit of the image
    each was made from (-1 for garbage); `changed` is the pixels flipped or the largest change to one pixel."""

    kind: str
    images: np.ndarray
    claimed: np.ndarray
    source: np.ndarray
    changed: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def _runner_up(z: np.ndarray, target: np.ndarray | int) -> np.ndarray:
    """Largest logit other than the target's, per row (z (n, 10), target (n,) or a scalar)."""
    others = z.astype(np.float64).copy()
    np.put_along_axis(others, np.broadcast_to(np.asarray(target), (len(z),))[:, None], -np.inf, axis=1)
    return others.max(axis=1)


def _paid(model: IntegerModel, images: np.ndarray, target: np.ndarray, margin: int) -> np.ndarray:
    labels, margins = classify(model, images)
    return (labels == target) & (margins >= margin)


def flip_one(model: IntegerModel, image: np.ndarray, target: int, margin: int = 0,
             max_flips: int = 64) -> tuple[np.ndarray, int] | None:
    """Greedy pixel flips turning `image` into a paid `target`; (image, flips) or None within max_flips."""
    x = as_pixels(image)[0].copy()
    a = x @ model.w1 + model.b1
    used = np.zeros(PIXELS, dtype=bool)
    for flips in range(max_flips + 1):
        if _paid(model, x, np.array([target]), margin)[0]:
            return x.astype(np.uint8), flips
        if flips == max_flips:
            break
        delta = np.where(x < 128, 255, 0) - x
        h = np.minimum(np.maximum(a[None, :] + delta[:, None] * model.w1, 0) >> model.shift, HIDDEN_MAX)
        z = h @ model.w2 + model.b2  # (784, 10): the logits after flipping each pixel
        score = z[:, target] - _runner_up(z, target)
        score[used | (delta == 0)] = -np.inf
        best = int(np.argmax(score))
        a = a + delta[best] * model.w1[best]
        x[best] += delta[best]
        used[best] = True
    return None


def pixel_flips(model: IntegerModel, images: np.ndarray, targets: np.ndarray, margin: int = 0,
                max_flips: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy flips for each image; (adversarial uint8 (n, 784), success (n,), flips (n,))."""
    x = as_pixels(images)
    out, ok, flips = x.astype(np.uint8), np.zeros(len(x), dtype=bool), np.zeros(len(x), dtype=np.int64)
    for i, (image, target) in enumerate(zip(x, np.asarray(targets), strict=True)):
        found = flip_one(model, image, int(target), margin, max_flips)
        if found is not None:
            out[i], flips[i], ok[i] = found[0], found[1], True
    return out, ok, flips


def gradient(floats: FloatWeights, model: IntegerModel, images: np.ndarray, targets: np.ndarray, margin: int = 0,
             step: int = 2, max_steps: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iterative sign steps of `step`/255 on the float weights' gradient of (target logit - runner-up), rounded
    to integers 0..255 after every step, until the integer model pays. (images, success, largest change)."""
    start = as_pixels(images)
    x, targets = start.copy(), np.asarray(targets, dtype=np.int64)
    ok = np.zeros(len(x), dtype=bool)
    rows = np.arange(len(x))
    for _ in range(max_steps + 1):
        ok = _paid(model, x, targets, margin)
        todo = rows[~ok]
        if not len(todo):
            break
        pre = x[todo] / 255.0 @ floats.w1 + floats.b1
        z = np.maximum(pre, 0) @ floats.w2 + floats.b2
        others = z.copy()
        others[np.arange(len(todo)), targets[todo]] = -np.inf
        rival = np.argmax(others, axis=1)
        direction = (floats.w2[:, targets[todo]] - floats.w2[:, rival]).T * (pre > 0)  # (k, H)
        g = direction @ floats.w1.T
        x[todo] = np.clip(x[todo] + step * np.sign(g).astype(np.int64), 0, 255)
    return x.astype(np.uint8), ok, np.abs(x - start).max(axis=1)


def blank(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform canvases: the first all black (an empty drawing), the rest one random grey level each."""
    levels = rng.integers(0, 256, n)
    levels[:1] = 0
    return np.repeat(levels[:, None], PIXELS, axis=1).astype(np.uint8)


def one_pixel(n: int, rng: np.random.Generator) -> np.ndarray:
    """A single lit pixel at a random place, mostly full white."""
    out = np.zeros((n, PIXELS), dtype=np.uint8)
    out[np.arange(n), rng.integers(0, PIXELS, n)] = np.where(rng.uniform(size=n) < 0.8, 255,
                                                             rng.integers(1, 256, n))
    return out


def strokes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two to five random straight pen strokes (anti-aliased, 1.5-3.5 pixels wide) anywhere on the canvas."""
    ys, xs = np.mgrid[0:28, 0:28].astype(np.float64)
    points = np.stack([ys.ravel(), xs.ravel()], axis=1)  # (784, 2)
    out = np.zeros((n, PIXELS))
    count = rng.integers(2, 6, n)
    for k in range(5):
        p, q = rng.uniform(2, 25, (n, 2)), rng.uniform(2, 25, (n, 2))
        width = rng.uniform(1.5, 3.5, n)
        d = q - p
        t = np.clip(((points[None] - p[:, None]) * d[:, None]).sum(-1) / np.maximum((d * d).sum(-1), 1e-9)[:, None],
                    0, 1)
        dist = np.linalg.norm(points[None] - (p[:, None] + t[..., None] * d[:, None]), axis=-1)
        ink = np.clip(width[:, None] / 2 + 0.5 - dist, 0, 1) * (k < count)[:, None]
        out = np.maximum(out, ink)
    return np.rint(out * 255).astype(np.uint8)


def noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random pixels, on a random share (5-100%) of the canvas."""
    density = rng.uniform(0.05, 1.0, n)
    lit = rng.uniform(size=(n, PIXELS)) < density[:, None]
    return (rng.integers(0, 256, (n, PIXELS)) * lit).astype(np.uint8)


GENERATORS = {"blank": blank, "one_pixel": one_pixel, "strokes": strokes, "noise": noise}


def craft(kind: str, artifact: ModelArtifact, n: int, seed: int, margin: int = 0, images: np.ndarray | None = None,
          labels: np.ndarray | None = None, max_tries: int = 200) -> Attacks:
    """`n` images of one attack kind that the artifact's integer model pays (fewer only if the attack keeps failing).
    The adversarial kinds start from `images` (with their true `labels`), each aimed at a random other digit."""
    if kind not in KINDS:
        raise ValueError(f"unknown attack kind {kind!r}; choose one of {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    if kind in GARBAGE:
        found: list[np.ndarray] = []
        for _ in range(max_tries):
            batch = GENERATORS[kind](max(4 * n, 64), rng)
            _, got = classify(artifact.integer, batch)
            found += [batch[got >= margin]]
            if sum(len(f) for f in found) >= n:
                break
        x = np.concatenate(found)[:n]
        claimed = classify(artifact.integer, x)[0]
        return Attacks(kind, x, claimed, np.full(len(x), -1), np.zeros(len(x), dtype=np.int64))
    if images is None or labels is None:
        raise ValueError(f"the {kind} attack starts from real images: give images and labels")
    pick = rng.permutation(len(images))[: 2 * n]
    x, y = as_pixels(images)[pick], np.asarray(labels, dtype=np.int64)[pick]
    targets = (y + rng.integers(1, 10, len(y))) % 10
    if kind == "pixel_flips":  # greedy search is the slow one: the spare images only for the failures
        adv, ok, changed = pixel_flips(artifact.integer, x[:n], targets[:n], margin)
        if ok.sum() < n:
            more = pixel_flips(artifact.integer, x[n:], targets[n:], margin)
            adv, ok, changed = (np.concatenate([adv, more[0]]), np.concatenate([ok, more[1]]),
                                np.concatenate([changed, more[2]]))
    else:
        adv, ok, changed = gradient(artifact.float_weights, artifact.integer, x, targets, margin)
    keep = np.flatnonzero(ok)[:n]
    return Attacks(kind, adv[keep], targets[keep], y[keep], changed[keep])


def craft_all(artifact: ModelArtifact, n: int, seed: int, images: np.ndarray, labels: np.ndarray,
              margin: int = 0) -> dict[str, Attacks]:
    """Every kind, `n` each, with one seed per kind derived from `seed`."""
    return {kind: craft(kind, artifact, n, seed * 100 + i, margin, images, labels) for i, kind in enumerate(KINDS)}
