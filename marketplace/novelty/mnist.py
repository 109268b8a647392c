"""MNIST's images as the base of the novelty index, built once and kept in a file.

Building means fingerprinting 60,000-70,000 images: about 30 s and over a gigabyte at its peak, so a service
does it in a child process (``python -m marketplace.novelty.mnist PATH [--without-test]``) and loads the file
(a second, about 60 MB in memory). The file is named after what it holds, so a change of format or of the
held-back test split builds a new one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from marketplace.errors import NoveltyError
from marketplace.novelty.index import FORMAT, NoveltyIndex, mnist_keys

BUILD_TIMEOUT_SECONDS = 900


def cache_path(directory: Path, include_test: bool) -> Path:
    return directory / f"novelty-mnist-{'all' if include_test else 'train'}-{FORMAT}.npz"


def build(path: Path, include_test: bool) -> None:
    """Index MNIST's training images (and its test images, unless held back) and save the index to `path`."""
    from model.data import load_mnist

    data = load_mnist()
    train = data.x_train.reshape(-1, 784)
    index = NoveltyIndex.trained_on(train)
    index.add_many(mnist_keys("train", len(train)), train)
    if include_test:
        test = data.x_test.reshape(-1, 784)
        index.add_many(mnist_keys("test", len(test)), test)
    path.parent.mkdir(parents=True, exist_ok=True)
    index.save(path)


def load_or_build(directory: Path, include_test: bool) -> NoveltyIndex:
    """The cached MNIST index under `directory`, built first in a child process when missing."""
    path = cache_path(directory, include_test)
    if not path.exists():
        command = [sys.executable, "-m", "marketplace.novelty.mnist", str(path)]
        if not include_test:
            command.append("--without-test")
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, check=False)
        if done.returncode != 0 or not path.exists():
            tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise NoveltyError(f"building the MNIST novelty index at {path} failed: {tail[0]}")
    return NoveltyIndex.load(path)


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the MNIST novelty index file.")
    parser.add_argument("path", type=Path)
    parser.add_argument("--without-test", action="store_true", help="hold MNIST's test images back")
    args = parser.parse_args()
    build(args.path, include_test=not args.without_test)


if __name__ == "__main__":
    main()
