"""The novelty index: finds exact and near copies of an image among every image indexed (MNIST and submissions).

fingerprint.py  the 196-value fingerprint that near copies share (shifts, a few pixels, intensity, thickening)
index.py        NoveltyIndex (faiss inverted file): add / add_many, nearest, is_copy, save / load; calibrate
"""

from marketplace.novelty.fingerprint import as_images, fingerprints
from marketplace.novelty.index import THRESHOLD, Match, NoveltyIndex, calibrate, mnist_keys

__all__ = ["THRESHOLD", "Match", "NoveltyIndex", "as_images", "calibrate", "fingerprints", "mnist_keys"]
