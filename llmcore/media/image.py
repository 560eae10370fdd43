"""Images as llama.cpp's mtmd prepares them for a vision encoder: decoded to 8-bit RGB, resized with
clip.cpp's Pillow-compatible resampler (bilinear, bicubic or Lanczos fixed-point separable filters,
reimplemented here so the pixels are llama.cpp's whatever Pillow version is installed), padded, scaled
to [0, 1], normalized by the projector's mean and deviation, and cut into patches.

Decoding is Pillow's (PNG, JPEG, GIF, BMP, WebP...); everything after it is numpy.
"""

from __future__ import annotations

import base64
import binascii
import enum
import io
import math
from pathlib import Path

import numpy as np

from llmcore.errors import LLMCoreError

#: fixed-point precision of the resampling weights: 32 bits - 8 (pixels) - 2 (headroom), as Pillow's
PRECISION_BITS = 22
#: images larger than this many pixels are refused before decoding (Pillow's own bomb limit is 179M)
MAX_PIXELS = 1 << 27


class ImageError(LLMCoreError):
    """An image that cannot be decoded or used."""


class Resize(enum.Enum):
    """clip.cpp's resize_algo, with each filter's support radius."""

    BILINEAR = 1.0
    BICUBIC = 2.0
    LANCZOS = 3.0


class Pad(enum.Enum):
    """clip.cpp's pad_style when an image is fitted into a target size: NONE stretches it; CEIL and
    NEAREST keep its aspect ratio, rounding the scaled size up or to nearest, and pad around it."""

    NONE = "none"
    CEIL = "ceil"
    NEAREST = "nearest"


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """The image ``data`` (PNG, JPEG, ...) as uint8 [height, width, 3] RGB; an alpha channel is
    dropped, as stb_image drops it when llama.cpp asks for three channels. A one-line ImageError
    names ``source`` when the bytes are not an image."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ImageError(f"{source}: decoding images needs Pillow: pip install 'llmcore[vision]'") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(f"{source}: {image.width}x{image.height} is more than {MAX_PIXELS} pixels")
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise ImageError(f"{source}: not an image in a known format (PNG, JPEG, GIF, BMP, WebP, ...)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageError(f"{source}: the image is corrupt or truncated ({error})") from None
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError(f"{source}: the image is empty")
    return rgb


def load_image(path: str | Path) -> np.ndarray:
    """The image file ``path`` decoded (see :func:`decode_image`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageError(f"{path}: cannot read the image: {error.strerror or error}") from None
    return decode_image(data, str(path))


def _filter_weights(in_size: int, out_size: int, algo: Resize) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's precompute_coeffs: for each output pixel the first input pixel and the fixed-point
    weights of the input pixels it reads (zero past their count), int32 [out, ksize]."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = algo.value * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    starts = np.zeros(out_size, np.int64)
    weights = np.zeros((out_size, ksize), np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        row = [_filter((x + xmin - center + 0.5) / filterscale, algo) for x in range(xmax)]
        total = 0.0
        for w in row:  # summed in order, as the C loop does
            total += w
        if total != 0.0:
            row = [w / total for w in row]
        weights[xx, :xmax] = row
        starts[xx] = xmin
    scaled = weights * float(1 << PRECISION_BITS)
    fixed = np.trunc(scaled + np.where(weights < 0, -0.5, 0.5)).astype(np.int64)
    return starts, fixed


def _filter(x: float, algo: Resize) -> float:
    if algo is Resize.LANCZOS:  # sinc(x) sinc(x / 3) on [-3, 3), before the absolute value as Pillow's
        return _sinc(x) * _sinc(x / 3.0) if -3.0 <= x < 3.0 else 0.0
    x = abs(x)
    if algo is Resize.BILINEAR:
        return 1.0 - x if x < 1.0 else 0.0
    a = -0.5  # Pillow's bicubic (ggml and PyTorch use -0.75)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x *= math.pi
    return math.sin(x) / x


def _resample(pixels: np.ndarray, out_size: int, axis: int, algo: Resize) -> np.ndarray:
    """One pass of the separable filter along ``axis`` (1: width, 0: height) of uint8 [h, w, 3]."""
    in_size = pixels.shape[axis]
    starts, weights = _filter_weights(in_size, out_size, algo)
    taps = np.minimum(starts[:, None] + np.arange(weights.shape[1]), in_size - 1)  # zero weights past the count
    source = np.moveaxis(pixels, axis, 0).astype(np.int64)  # [in, other, 3]
    acc = np.zeros((out_size, *source.shape[1:]), np.int64)
    for k in range(weights.shape[1]):  # one tap at a time: integer sums, so any order is the C loop's
        acc += source[taps[:, k]] * weights[:, k, None, None]
    acc = np.moveaxis(acc, 0, axis)
    return np.clip((acc + (1 << (PRECISION_BITS - 1))) >> PRECISION_BITS, 0, 255).astype(np.uint8)


def resize(pixels: np.ndarray, width: int, height: int, algo: Resize) -> np.ndarray:
    """uint8 [h, w, 3] resampled to ``width`` x ``height`` as clip.cpp's resize_pillow: the
    horizontal pass first, each pass only where that side changes."""
    if not (0 < width <= 65536 and 0 < height <= 65536):
        raise ImageError(f"resize target {width}x{height} is out of range (max 65536)")
    if width != pixels.shape[1]:
        pixels = _resample(pixels, width, 1, algo)
    if height != pixels.shape[0]:
        pixels = _resample(pixels, height, 0, algo)
    return pixels


def fit(pixels: np.ndarray, width: int, height: int, algo: Resize, pad: Pad,
        pad_color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """clip.cpp's img_tool::resize: ``pixels`` brought to ``width`` x ``height``, stretched (Pad.NONE)
    or scaled within it keeping the aspect ratio and centered on ``pad_color``."""
    src_h, src_w = pixels.shape[:2]
    if (src_w, src_h) == (width, height):
        return pixels
    if pad is Pad.NONE:
        return resize(pixels, width, height, algo)
    scale = min(np.float32(width) / np.float32(src_w), np.float32(height) / np.float32(src_h))
    round_size = (lambda v: int(np.round(v))) if pad is Pad.NEAREST else (lambda v: int(np.ceil(v)))
    new_w = min(round_size(np.float32(src_w) * scale), width)
    new_h = min(round_size(np.float32(src_h) * scale), height)
    inner = resize(pixels, new_w, new_h, algo)
    out = np.empty((height, width, 3), np.uint8)
    out[...] = np.asarray(pad_color, np.uint8)
    if pad is Pad.NEAREST:
        x0 = int(np.round(np.float32(width - new_w) / np.float32(2)))
        y0 = int(np.round(np.float32(height - new_h) / np.float32(2)))
    else:
        x0, y0 = (width - new_w) // 2, (height - new_h) // 2
    out[y0:y0 + new_h, x0:x0 + new_w] = inner[:height - y0, :width - x0]
    return out


def normalize(pixels: np.ndarray, mean: tuple[float, float, float], std: tuple[float, float, float]) -> np.ndarray:
    """uint8 [h, w, 3] as float32 (x / 255 - mean) / std per channel, each step rounded to float32."""
    x = pixels.astype(np.float32) / np.float32(255.0)
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def patches(image: np.ndarray, patch_size: int) -> np.ndarray:
    """float32 [h, w, 3] cut into non-overlapping patches, row-major over the grid: float32
    [n_y * n_x, 3 * patch * patch], each row a patch's values channel by channel, then by pixel
    row and column (the layout of a patch embedding's kernel [n_embd, 3, patch, patch])."""
    h, w, _ = image.shape
    n_y, n_x = h // patch_size, w // patch_size
    grid = image[:n_y * patch_size, :n_x * patch_size].reshape(n_y, patch_size, n_x, patch_size, 3)
    return np.ascontiguousarray(grid.transpose(0, 2, 4, 1, 3).reshape(n_y * n_x, 3 * patch_size * patch_size))


def image_from_url(url: str) -> np.ndarray:
    """An OpenAI ``image_url``: a ``data:image/...;base64,`` URL, a ``file://`` URL or a local path,
    decoded. Remote (http/https) images are not fetched."""
    if url.startswith("data:"):
        return _data_url_image(url)
    if url.startswith(("http://", "https://")):
        raise ImageError(f"image_url {url[:60]!r}: remote images are not fetched; send a data URL or a file path")
    return load_image(url.removeprefix("file://"))


def image_from_request(url: str, media_path: Path | None) -> np.ndarray:
    """An ``image_url`` a server's client sent, read as llama-server's handle_media reads it: a data URL
    or bare base64; a ``file://NAME`` URL only with ``media_path`` (its ``--media-path``), NAME a
    path inside that folder. Remote images are not fetched and other local paths are refused: the
    client must not read the server's files."""
    if url.startswith("data:"):
        return _data_url_image(url)
    if url.startswith(("http://", "https://")):
        raise ImageError(f"image_url {url[:60]!r}: this server does not fetch remote images; send a data URL")
    if url.startswith("file://"):
        if media_path is None:
            raise ImageError("image_url: file:// URLs are not allowed unless the server has --media-path")
        name = url.removeprefix("file://")
        try:  # the client is told the name it sent, never the server's folder
            data = _media_file(media_path, name).read_bytes()
        except OSError:
            raise ImageError(f"image_url: file does not exist or cannot be opened: {name[:80]!r}") from None
        return decode_image(data, url[:80])
    try:
        data = base64.b64decode(url, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        raise ImageError("image_url: neither a data URL nor base64 (local files: file://NAME with --media-path)")
    return decode_image(data, "image_url")


def _data_url_image(url: str) -> np.ndarray:
    header, comma, payload = url.partition(",")
    if not comma or not header.endswith(";base64"):
        raise ImageError("image_url: a data URL must be data:<type>;base64,<data>")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("image_url: the data URL's base64 payload is malformed") from None
    return decode_image(data, "image_url")


def _media_file(media_path: Path, name: str) -> Path:
    """``name`` inside ``media_path``, checked as llama.cpp's fs_validate_filename (subfolders allowed:
    no '..', control or reserved characters, leading or trailing space, trailing dot), and still
    inside it once links are resolved."""
    bad = (not name or len(name.encode()) > 255 or ".." in name or name.startswith(" ") or name.endswith((" ", "."))
           or any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in ':*?"<>|\\' for c in name))
    root = media_path.resolve()
    path = (root / name.lstrip("/")).resolve()
    if bad or not path.is_relative_to(root):
        raise ImageError(f"image_url: file path is not allowed: {name[:80]!r}")
    return path
