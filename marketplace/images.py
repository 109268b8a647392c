"""Turn an uploaded PNG or JPEG into a 28x28 MNIST image, refusing anything unsafe or unusable.

The normalisation is MNIST's own (LeCun, Cortes and Burges):

1. decode the first frame to grayscale, upright (EXIF orientation applied, so phone photos work);
   a drawing on a transparent canvas is first put on the background its strokes stand out from;
2. make the ink light on black: invert when the background (the median of an outer ring) is light;
3. subtract the paper, stretch the strongest ink to 255, zero what is faint and crop to the ink's
   bounding box. Photos need a little more than a constant threshold: a light blur against sensor
   noise, the paper modelled as a plane fitted to the border (uneven lighting), and "faint" meaning
   below ``INK_THRESHOLD`` of the strongest ink or within ``NOISE_SIGMAS`` of the border's own noise;
4. scale with anti-aliasing so that the longer side is 20 pixels, keeping the aspect ratio;
5. paste into a 28x28 field so that the ink's centre of mass lands on (14, 14) (MNIST's own mean),
   rounding the shift and clipping whatever falls outside.

Refusals, in the order they are checked, each an ``ImageError`` whose message a client can be shown:
more than ``max_bytes`` (before anything is parsed); not a PNG or JPEG (by content: Pillow's other
parsers are never tried); a declared width x height over ``max_pixels`` (before any pixel is decoded;
Pillow's own decompression-bomb limit applies on top); truncated or corrupt data; no ink at all.
Animated and multi-frame files (APNG, a camera's MPO) are accepted and only their first frame is used.

Memory: a large JPEG is decoded at a reduced DCT scale; a PNG is decoded whole, so the peak is about
8 bytes per pixel of ``max_pixels`` (160 MB at the default) for an RGBA PNG. Everything is shrunk to at
most ``WORK_SIDE`` pixels a side before any arithmetic.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, UnidentifiedImageError

from marketplace.errors import ImageError

__all__ = ["MAX_BYTES", "MAX_PIXELS", "to_mnist", "to_png"]

MAX_BYTES = 2_000_000
MAX_PIXELS = 20_000_000
SIDE = 28  # MNIST images are SIDE x SIDE
DIGIT_SIDE = 20  # the longer side of the ink's bounding box after scaling
CENTRE = 14.0  # where the ink's centre of mass lands, in pixel indices
WORK_SIDE = 1024  # uploads are shrunk to at most this many pixels a side before any arithmetic
SMOOTHING = 1 / 256  # blur radius against sensor noise, as a fraction of the longer side (none below 128 px)
BORDER_FRACTION = 0.02  # the ring where the paper shows: 2% of the shorter side, at least 1 pixel
MIN_CONTRAST = 32  # gray levels between paper and the strongest ink below which the image is blank
INK_THRESHOLD = 0.2  # ink fainter than this fraction of the strongest is paper texture or shadow
NOISE_SIGMAS = 5  # ... and ink within this many standard deviations of the paper's noise is noise

NOT_PNG_OR_JPEG = "not a PNG or JPEG image"
CORRUPT = "the image is truncated or corrupt"
BLANK = "no digit found: the image is blank"

_FORMATS = ("PNG", "JPEG")
_DECODED_FORMATS = frozenset({"PNG", "JPEG", "MPO"})  # Pillow names a multi-picture camera JPEG "MPO"
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
_ORIENTATION = 0x0112  # the EXIF tag
_UPRIGHT = {  # EXIF orientation -> the transposition that shows the picture upright
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def to_mnist(data: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An uploaded PNG or JPEG -> a 28x28 uint8 image, 0 background and 255 ink, normalised like MNIST.

    Raises ImageError, with a one-sentence message a client can be shown, for every refusal.
    """
    if len(data) > max_bytes:
        raise ImageError(f"the upload is {len(data):,} bytes; the limit is {max_bytes:,} bytes")
    pixels = _decode(data, max_pixels)
    ink = _crop(_ink(_flatten(pixels)))
    return _centre(_scale(ink))


def to_png(pixels: np.ndarray) -> bytes:
    """A 28x28 image of integers 0..255 as an 8-bit grayscale PNG (for receipts and tests)."""
    array = np.asarray(pixels)
    if array.shape != (SIDE, SIDE):
        raise ValueError(f"an MNIST image is {SIDE}x{SIDE}; got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 255:
        raise ValueError("pixels must be integers 0..255")
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


# --- decoding: the only place Pillow touches the upload ---------------------------------------------------------


def _decode(data: bytes, max_pixels: int) -> np.ndarray:
    """The first frame, upright, at most WORK_SIDE a side: uint8 (h, w) gray, or (h, w, 2) gray and alpha."""
    with _pillow_errors(data, max_pixels), Image.open(io.BytesIO(data), formats=_FORMATS) as im:
        if im.format not in _DECODED_FORMATS:
            raise ImageError(NOT_PNG_OR_JPEG)
        _check_pixels(im.size, max_pixels)
        im.draft("L", _draft_size(im.size))  # JPEG only: decode at 1/2..1/8 scale when that is still large enough
        im.load()
        orientation = im.getexif().get(_ORIENTATION, 1)
        small = _shrink(_gray(im))
        if orientation in _UPRIGHT:
            small = small.transpose(_UPRIGHT[orientation])
        return np.asarray(small)


@contextmanager
def _pillow_errors(data: bytes, max_pixels: int) -> Iterator[None]:
    """Turn whatever Pillow raises, or warns, on a hostile or broken file into an ImageError."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns for images between its bomb limit and twice that: make it a refusal.
            # Its other warnings (odd metadata) do not matter, only the pixels are used. catch_warnings is
            # process-wide before Python 3.14; a race can only let the warning reach the log, while
            # _check_pixels still refuses the image (max_pixels is below Pillow's limit by default).
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"the image has over {Image.MAX_IMAGE_PIXELS or 0:,} pixels; the limit is {max_pixels:,} pixels"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(CORRUPT if data.startswith(_SIGNATURES) else NOT_PNG_OR_JPEG) from exc
    except Exception as exc:
        # Pillow's parsers have no error hierarchy: broken input raises OSError, SyntaxError, ValueError,
        # EOFError, struct.error, zlib.error and more. Only decoding (Pillow and thin wrappers) runs here.
        raise ImageError(CORRUPT) from exc


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageError(f"the image is {width}x{height} pixels; the limit is {max_pixels:,} pixels")
    if width * height == 0:
        raise ImageError(CORRUPT)


def _draft_size(size: tuple[int, int]) -> tuple[int, int]:
    """The smallest size worth decoding: WORK_SIDE on the longer side (the image's own size if smaller)."""
    width, height = size
    scale = min(1.0, WORK_SIDE / max(width, height))
    return math.ceil(width * scale), math.ceil(height * scale)


def _gray(im: Image.Image) -> Image.Image:
    """'L', or 'LA' when the image has transparency (an alpha channel, or a transparent colour or index)."""
    if im.mode.startswith("I"):  # 16-bit PNG: Pillow's convert would clip at 255 rather than scale
        im = Image.fromarray(np.clip(np.asarray(im) >> 8, 0, 255).astype(np.uint8))
    return im.convert("LA" if im.has_transparency_data else "L")


def _shrink(im: Image.Image) -> Image.Image:
    """Box-average down to at most WORK_SIDE a side (Pillow premultiplies alpha, so edges stay clean)."""
    factor = math.ceil(max(im.size) / WORK_SIDE)
    return im.reduce(factor) if factor > 1 else im


# --- normalisation: plain numpy on a small array -----------------------------------------------------------------


def _flatten(pixels: np.ndarray) -> np.ndarray:
    """Gray levels as float32, a transparent canvas composited over the background its strokes stand out from."""
    if pixels.ndim == 2:
        return pixels.astype(np.float32)
    gray = pixels[..., 0].astype(np.float32)
    alpha = pixels[..., 1].astype(np.float32) / 255
    if alpha.sum() == 0:
        raise ImageError(BLANK)
    # the colour of what is drawn: dark strokes go on white paper, light strokes on black
    drawn = float((gray * alpha).sum() / alpha.sum())
    background = 255.0 if drawn < 128 else 0.0
    return gray * alpha + background * (1 - alpha)


def _ink(gray: np.ndarray) -> np.ndarray:
    """Ink strength 0..255 on a 0 background: inverted if dark-on-light, the paper subtracted, noise zeroed."""
    gray = _blur(gray, round(max(gray.shape) * SMOOTHING))
    ring = _ring(gray.shape)
    if np.median(gray[ring]) > 127.5:  # dark ink on light paper; MNIST is light ink on black
        gray = 255 - gray
    paper, noise = _paper(gray, ring)
    ink = np.clip(gray - paper, 0, None)
    peak = float(ink.max())
    floor = max(INK_THRESHOLD * peak, NOISE_SIGMAS * noise)
    if peak < MIN_CONTRAST or peak <= floor:
        raise ImageError(BLANK)
    ink[ink < floor] = 0
    return ink * (255 / peak)


def _blur(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2 radius + 1)-pixel square, edges repeated: a cheap low-pass against sensor noise."""
    for axis in (0, 1):
        pad = [(radius, radius) if i == axis else (0, 0) for i in (0, 1)]
        a = sliding_window_view(np.pad(a, pad, mode="edge"), 2 * radius + 1, axis=axis).mean(axis=-1)
    return a


def _ring(shape: tuple[int, ...]) -> np.ndarray:
    """A mask of the outer ring, BORDER_FRACTION of the shorter side wide: where the paper shows."""
    k = max(1, round(BORDER_FRACTION * min(shape)))
    ring = np.ones(shape, dtype=bool)
    ring[k:-k, k:-k] = False
    return ring


def _paper(gray: np.ndarray, ring: np.ndarray) -> tuple[np.ndarray, float]:
    """The background as a plane fitted to the ring (so uneven lighting is not ink), and the ring's noise.

    Fitted twice: the second fit leaves out what strays far from the first, such as ink touching the edge.
    """
    rows, cols = np.nonzero(ring)
    design = np.column_stack([np.ones(rows.size), rows, cols]).astype(np.float64)
    values = gray[ring].astype(np.float64)
    keep = np.ones(values.size, dtype=bool)
    for _ in range(2):
        coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residual = values - design @ coef
        noise = 1.4826 * float(np.median(np.abs(residual[keep])))  # a robust standard deviation
        keep = np.abs(residual) <= 3 * noise + 1
    all_rows, all_cols = np.indices(gray.shape)
    return coef[0] + coef[1] * all_rows + coef[2] * all_cols, noise


def _crop(ink: np.ndarray) -> np.ndarray:
    """The bounding box of the ink (there is some: _ink refuses blank images)."""
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _scale(ink: np.ndarray) -> np.ndarray:
    """Resize with anti-aliasing so that the longer side is DIGIT_SIDE, keeping the aspect ratio."""
    height, width = ink.shape
    ratio = DIGIT_SIDE / max(height, width)
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    scaled = Image.fromarray(ink.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(scaled), 0, 255)  # Lanczos rings slightly outside 0..255


def _centre(patch: np.ndarray) -> np.ndarray:
    """Paste into a SIDE x SIDE field with the centre of mass on (CENTRE, CENTRE), clipping at the edges."""
    rows, cols = np.indices(patch.shape)
    mass = float(patch.sum())
    if mass == 0:
        raise ImageError(BLANK)
    top = round(CENTRE - float((rows * patch).sum()) / mass)
    left = round(CENTRE - float((cols * patch).sum()) / mass)
    field = np.zeros((SIDE, SIDE), dtype=np.float32)
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + patch.shape[0], SIDE), min(left + patch.shape[1], SIDE)
    field[t0:t1, l0:l1] = patch[t0 - top : t1 - top, l0 - left : l1 - left]
    return np.rint(field).astype(np.uint8)
