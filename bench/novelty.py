"""Benchmark: the novelty index (marketplace.novelty) at MNIST's size and at a million images.

    python bench/novelty.py [--total 1000000] [--queries 2000] [--out bench/results/novelty.json]

1. MNIST's 60,000 training images indexed (the rebuild a service does at start): build time; then each of the
   10,000 test images looked up: honest handwriting flagged as a copy (false positives); and near copies of the
   first `--recall` indexed images (shifts, flips, intensity, thickening): the share found as copies of their
   own source.
2. The same index grown to `--total` images with generated digit-like images: random affine distortions
   (rotation up to 15 degrees, scale 0.85-1.15, shear up to 0.25, shift up to 2 pixels, bilinear) of training
   images. The test images stay out, so step 1's measures are repeated against a million images. Lookup time
   per query (one image at a time through `nearest`, its three fingerprint variants included), build time,
   the process's peak memory.

faiss runs on one thread (the machine's 2 cores are shared). Prints one JSON object and writes it to `--out`.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from marketplace.novelty import NoveltyIndex, calibrate, edits, mnist_keys
from marketplace.novelty.fingerprint import DIM, SIDE
from marketplace.novelty.index import FALSE_POSITIVE_RATE, NPROBE, THRESHOLD
from model.artifact import load_artifact
from model.data import load_mnist

GENERATE_CHUNK = 5_000  # images generated at once (the bilinear arithmetic takes about 80 KB an image)


def near_copies(images: np.ndarray, unread: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(12)
    made: dict[str, Callable[[], np.ndarray]] = {
        "exact": lambda: images,
        "shift 1 pixel (diagonal)": lambda: edits.shift(images, 1, -1),
        "shift 2 pixels": lambda: edits.shift(images, 0, 2),
        "13 flips among pixels the model does not read": lambda: edits.flip(images, 13, rng, among=unread),
        "13 such flips and a 1-pixel shift": lambda: edits.shift(edits.flip(images, 13, rng, among=unread), 1, 0),
        "5 flips anywhere": lambda: edits.flip(images, 5, rng),
        "13 flips anywhere": lambda: edits.flip(images, 13, rng),
        "dimmed to 80%": lambda: edits.intensity(images, scale=0.8),
        "brightened by 20 levels": lambda: edits.intensity(images, offset=20),
        "gamma 0.8": lambda: edits.intensity(images, gamma=0.8),
        "thickened by a pixel (4 neighbours)": lambda: edits.thicken(images),
        "thickened by a pixel (8 neighbours)": lambda: edits.thicken(images, square=True),
    }
    return {name: make() for name, make in made.items()}


def recall(index: NoveltyIndex, copies: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    out = {}
    for name, batch in copies.items():
        matches = index.nearest_many(batch)
        copy = [m is not None and m.distance < index.threshold for m in matches]
        own = [c and m is not None and m.key == f"mnist:train:{i}"
               for i, (c, m) in enumerate(zip(copy, matches, strict=True))]
        out[name] = {"found": round(float(np.mean(copy)), 4), "found_own_source": round(float(np.mean(own)), 4)}
    return out


def false_positives(index: NoveltyIndex, honest: np.ndarray) -> dict[str, float]:
    matches = index.nearest_many(honest)
    distances = np.array([m.distance if m is not None else np.inf for m in matches])
    flagged = int((distances < index.threshold).sum())
    return {"honest_images": len(honest), "flagged": flagged, "rate": round(flagged / len(honest), 5),
            "median_nearest_distance": round(float(np.median(distances)), 4)}


def generated(sources: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` random affine distortions of random `sources` (n, 28, 28) uint8, bilinear, zero outside."""
    picked = sources[rng.integers(0, len(sources), count)].astype(np.float32)
    angle = rng.uniform(-np.pi / 12, np.pi / 12, count)
    scale = rng.uniform(0.85, 1.15, count)
    shear = rng.uniform(-0.25, 0.25, count)
    move = rng.uniform(-2, 2, (count, 2))
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    grid = np.arange(SIDE, dtype=np.float32) - (SIDE - 1) / 2
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    sy = (cos[:, None, None] * yy + (sin + shear * cos)[:, None, None] * xx) + (SIDE - 1) / 2 - move[:, 0, None, None]
    sx = (-sin[:, None, None] * yy + cos[:, None, None] * xx) + (SIDE - 1) / 2 - move[:, 1, None, None]
    y0, x0 = np.floor(sy).astype(np.int64), np.floor(sx).astype(np.int64)
    fy, fx = sy - y0, sx - x0
    padded = np.pad(picked, ((0, 0), (1, 2), (1, 2)))
    rows = np.arange(count)[:, None, None]

    def at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return padded[rows, np.clip(y + 1, 0, SIDE + 2), np.clip(x + 1, 0, SIDE + 2)]

    out = (at(y0, x0) * (1 - fy) * (1 - fx) + at(y0, x0 + 1) * (1 - fy) * fx
           + at(y0 + 1, x0) * fy * (1 - fx) + at(y0 + 1, x0 + 1) * fy * fx)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def latency(index: NoveltyIndex, queries: np.ndarray) -> dict[str, float]:
    times = []
    for image in queries:
        start = time.perf_counter()
        index.nearest(image)
        times.append((time.perf_counter() - start) * 1000)
    t = np.array(times)
    return {"queries": len(t), **{f"p{q}_ms": round(float(np.percentile(t, q)), 2) for q in (50, 95, 99)},
            "mean_ms": round(float(t.mean()), 2)}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--recall", type=int, default=1000, help="indexed images to make near copies of")
    parser.add_argument("--nprobe", type=int, default=NPROBE, help="clusters scanned per lookup")
    parser.add_argument("--calibrate", action="store_true", help="also re-run the threshold's calibration")
    parser.add_argument("--out", type=Path, default=Path("bench/results/novelty.json"))
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    data = load_mnist()
    unread = np.flatnonzero(~(load_artifact().integer.w1 != 0).any(axis=1))
    train, test = data.x_train, data.x_test
    machine = f"{platform.machine()}, Python {platform.python_version()}, faiss {faiss.__version__}, 1 thread"
    result: dict[str, object] = {"threshold": THRESHOLD, "fingerprint_dim": DIM, "nprobe": args.nprobe,
                                 "machine": machine}
    if args.calibrate:
        start = time.perf_counter()
        chosen, _ = calibrate(train, 10_000)
        result["calibration"] = {"train_indexed": 50_000, "held_out": 10_000, "threshold": round(chosen, 4),
                                 "false_positive_rate": FALSE_POSITIVE_RATE,
                                 "seconds": round(time.perf_counter() - start, 1)}

    start = time.perf_counter()
    index = NoveltyIndex.trained_on(train)
    index.nprobe = args.nprobe
    index.add_many(mnist_keys("train", len(train)), train)
    mnist_seconds = time.perf_counter() - start
    copies = near_copies(train[:args.recall], unread)
    result["mnist_train_index"] = {
        "images": len(index), "build_seconds": round(mnist_seconds, 1),
        "false_positives_on_test": false_positives(index, test),
        "near_copies_found": recall(index, copies),
        "lookup": latency(index, test[:args.queries // 2]),
    }
    print(json.dumps(result["mnist_train_index"]), file=sys.stderr, flush=True)

    rng = np.random.default_rng(1)
    start = time.perf_counter()
    made = 0
    while len(index) < args.total:
        count = min(GENERATE_CHUNK, args.total - len(index))
        index.add_many([f"generated:{made + i}" for i in range(count)], generated(train, count, rng))
        made += count
    grow_seconds = time.perf_counter() - start
    mixed = np.concatenate([test[:args.queries // 2], copies["shift 1 pixel (diagonal)"][:args.queries // 2]])
    result["million_index"] = {
        "images": len(index), "generated": made,
        "build_seconds": round(mnist_seconds + grow_seconds, 1),
        "vectors_mb": round(len(index) * DIM * 4 / 2**20, 1),
        "lookup": latency(index, mixed),
        "false_positives_on_test": false_positives(index, test),
        "near_copies_found": recall(index, copies),
    }
    result["peak_rss_mb"] = peak_rss_mb()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
