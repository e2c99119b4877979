"""Image decoding, cropping, resizing, encoding and grids — the one home of per-image pixel work.

`decode_image` turns any file's bytes into an upright RGB uint8 array or raises `ImageRejected` with a reason code;
ingest, the trainer's folder reader and the metrics all call it, so a file is judged the same way everywhere.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Reason codes of rejected inputs (the ingest report groups by these).
EMPTY_FILE = "empty_file"
UNREADABLE = "unreadable"  # the file could not be read at all (permissions, I/O error)
NOT_AN_IMAGE = "not_an_image"  # not a format we decode (a text file named .jpg, ...)
TRUNCATED = "truncated"  # a known format whose data ends early / is corrupt
TOO_LARGE = "too_large"  # over the pixel-count guard (decompression bombs)
TOO_SMALL = "too_small"
DECODE_ERROR = "decode_error"  # anything else the decoder refused
REASONS = (EMPTY_FILE, UNREADABLE, NOT_AN_IMAGE, TRUNCATED, TOO_LARGE, TOO_SMALL, DECODE_ERROR)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")

# 64 Mpx: a 8000×8000 photo passes, a 20000×20000 bomb is refused from its header alone, before any pixel is decoded.
DEFAULT_MAX_PIXELS = 64_000_000

ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = None  # our own guard (max_pixels) runs first and names the reason


class ImageRejected(ValueError):
    """An input that cannot become a training image. `reason` is one of REASONS (or a caller's own code)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def decode_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = 8,
                 background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Decode JPEG/PNG/WebP/GIF/BMP bytes to an upright HxWx3 uint8 RGB array.

    EXIF orientation is applied; every mode (1, L, LA, P, RGBA, CMYK, I;16, I, F, ...) becomes RGB, transparent
    pixels composited on `background`; animated images give their first frame.
    """
    if not data:
        raise ImageRejected(EMPTY_FILE, "0 bytes")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise ImageRejected(NOT_AN_IMAGE, "not a recognised image format") from e
    except Exception as e:  # noqa: BLE001 - PIL raises many types on garbage headers
        raise ImageRejected(NOT_AN_IMAGE, f"{type(e).__name__}: {e}") from e
    width, height = img.size
    if width * height > max_pixels:
        raise ImageRejected(TOO_LARGE, f"{width}x{height} = {width * height} pixels > limit {max_pixels}")
    if min(width, height) < min_side:
        raise ImageRejected(TOO_SMALL, f"{width}x{height} is smaller than {min_side} px on a side")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
    except (OSError, SyntaxError, EOFError) as e:
        message = str(e) or type(e).__name__
        truncated = any(word in message.lower() for word in ("truncated", "broken", "eof", "premature"))
        raise ImageRejected(TRUNCATED if truncated or isinstance(e, EOFError) else DECODE_ERROR, message) from e
    except Exception as e:  # noqa: BLE001
        raise ImageRejected(DECODE_ERROR, f"{type(e).__name__}: {e}") from e
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns on every corrupt EXIF block
            img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not lose a good picture: keep it as stored
        pass
    try:
        return to_rgb(img, background=background)
    except Exception as e:  # noqa: BLE001 - modes PIL cannot convert (LAB, HSV, multi-band TIFF-like data)
        raise ImageRejected(DECODE_ERROR, f"cannot convert mode {img.mode!r} to RGB: {e}") from e


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Any PIL mode → HxWx3 uint8, with alpha composited on `background` and high bit depths scaled (not clipped)."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "I":
            arr = arr / 257.0 if arr.max(initial=0) > 255 else arr
        else:  # float images: [0, 1] or [0, 255]
            arr = arr * 255.0 if arr.max(initial=0) <= 1.0 else arr
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        canvas.alpha_composite(rgba)
        return np.asarray(canvas.convert("RGB"))
    return np.asarray(img.convert("RGB"))


def center_crop(image: np.ndarray, crop_size: int | None = None) -> np.ndarray:
    """The central `crop_size` square (the largest central square when None), as carpedm20's `--crop` does."""
    h, w = image.shape[:2]
    side = min(h, w) if crop_size is None else min(crop_size, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top:top + side, left:left + side]


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize an HxWxC uint8 image to size×size (or (h, w)) with an antialiasing filter."""
    h, w = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (h, w):
        return image
    pil = Image.fromarray(image)
    # Lanczos when shrinking (antialiased), bicubic when enlarging.
    method = Image.Resampling.LANCZOS if h < image.shape[0] else Image.Resampling.BICUBIC
    return np.asarray(pil.resize((w, h), method, reducing_gap=3.0))


def encode_png(image: np.ndarray, compress_level: int = 6) -> bytes:
    """HxWx3 (or HxW) uint8 → PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] (float) → uint8 [0, 255]; uint8 input is returned as is."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray | Sequence[np.ndarray], ncols: int | None = None, padding: int = 2,
              pad_value: int = 255) -> np.ndarray:
    """Tile N×H×W×C images (uint8, or float in [-1, 1]) into one uint8 grid image, row-major."""
    images = to_uint8(np.asarray(images))
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    if c == 1:
        images = np.repeat(images, 3, axis=-1)
        c = 3
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.full((nrows * (h + padding) + padding, ncols * (w + padding) + padding, c), pad_value, np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, ncols)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = img
    return grid


def save_image(image: np.ndarray, path: str) -> str:
    """Write an image (PNG by extension, or any PIL format) atomically; returns the path."""
    import os

    from dcgan.fileio import atomic_write

    fmt = os.path.splitext(path)[1].lstrip(".").upper() or "PNG"
    fmt = {"JPG": "JPEG"}.get(fmt, fmt)
    return atomic_write(path, lambda tmp: Image.fromarray(to_uint8(image)).save(tmp, format=fmt))


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def iter_folder_files(folder: str) -> Iterator[tuple[str, str]]:
    """Every file under `folder`, recursively, as (relative posix path, path) pairs in a stable order (sorted within
    each folder), lazily. Hidden files and folders (".name") and macOS `__MACOSX` folders are left out; symlinked
    folders are followed, each real folder once (a symlink cycle is not followed round)."""
    import os

    seen: set[str] = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX"
                         and os.path.realpath(os.path.join(root, d)) not in seen)
        for name in sorted(names):
            if not name.startswith("."):
                path = os.path.join(root, name)
                yield os.path.relpath(path, folder).replace(os.sep, "/"), path


def list_image_files(folder: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The image files under `folder` (`iter_folder_files`' rules) as sorted (relative posix path, path) pairs, and
    the relative paths of the other files (skipped)."""
    found: list[tuple[str, str]] = []
    ignored: list[str] = []
    for rel, path in iter_folder_files(folder):
        if is_image_name(rel):
            found.append((rel, path))
        else:
            ignored.append(rel)
    return sorted(found), sorted(ignored)


def load_image_file(path: str, size: int, crop: str = "center", crop_size: int | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read, decode, crop and resize one file to size×size×3 uint8. Raises ImageRejected (reason UNREADABLE when the
    file cannot be read)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageRejected(UNREADABLE, f"{type(e).__name__}: {e.strerror or e}") from e
    image = decode_image(data, max_pixels=max_pixels)
    if crop == "center":
        image = center_crop(image, crop_size)
    return resize(image, size)
