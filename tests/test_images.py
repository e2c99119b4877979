"""dcgan.images: every kind of input file becomes an upright RGB uint8 image or a rejection with the right reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dcgan import images as im


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _pattern(h: int = 48, w: int = 64) -> np.ndarray:
    """An asymmetric RGB picture: a red block top-left, a blue gradient right; orientation errors are visible."""
    rng = np.random.default_rng(0)
    img = np.full((h, w, 3), 200, np.uint8)
    img[: h // 3, : w // 4] = (230, 20, 20)
    img[:, w // 2:, 2] = np.linspace(0, 255, w - w // 2).astype(np.uint8)
    img[h // 2:, : w // 2, 1] = rng.integers(0, 255, (h - h // 2, w // 2))
    return img


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR claiming width×height, with a tiny IDAT: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_every_supported_format_decodes_to_rgb_uint8(fmt):
    pattern = _pattern()
    out = im.decode_image(_encode(Image.fromarray(pattern), fmt))
    assert out.shape == pattern.shape and out.dtype == np.uint8
    tolerance = {"JPEG": 40, "WEBP": 40, "GIF": 60}.get(fmt, 0)
    assert np.abs(out.astype(int) - pattern).mean() <= tolerance / 4, f"{fmt} decoded far from the original"


def test_exif_rotated_photo_comes_out_upright():
    pattern = _pattern()
    stored = np.rot90(pattern, k=1)  # what a camera writes when held sideways...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with "rotate 90° clockwise to display"
    out = im.decode_image(_encode(Image.fromarray(np.ascontiguousarray(stored)), "PNG", exif=exif.tobytes()))
    assert out.shape == pattern.shape, f"EXIF orientation not applied: got {out.shape}, want {pattern.shape}"
    np.testing.assert_array_equal(out, pattern)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # PIL warns while writing the broken test file
def test_malformed_exif_does_not_lose_the_picture():
    data = _encode(Image.fromarray(_pattern()), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage-not-a-tiff")
    out = im.decode_image(data)
    assert out.shape == (48, 64, 3)


def test_16_bit_png_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 40 * 50).reshape(40, 50).astype(np.uint16)
    out = im.decode_image(_encode(Image.fromarray(ramp), "PNG"))
    assert out.dtype == np.uint8 and out.shape == (40, 50, 3)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255, "16-bit range must map onto 0..255"
    assert 120 <= out[20, 25, 0] <= 135, "mid-grey must stay mid-grey (scaled, not clipped at 255)"


def test_cmyk_jpeg_converts_to_matching_rgb():
    pattern = _pattern()
    out = im.decode_image(_encode(Image.fromarray(pattern).convert("CMYK"), "JPEG", quality=95))
    assert out.shape == pattern.shape
    assert np.abs(out.astype(int) - pattern).mean() < 12, "CMYK colours came back wrong (inverted?)"


def test_rgba_png_is_composited_on_white():
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :10, 3] = 255  # left half opaque red, right half fully transparent
    out = im.decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(out[5, 2]) == (255, 0, 0)
    assert tuple(out[5, 15]) == (255, 255, 255)


def test_palette_gif_with_transparency_decodes():
    img = Image.fromarray(_pattern()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.info["transparency"] = 0
    out = im.decode_image(_encode(img, "GIF", transparency=0))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "I", "F", "YCbCr", "HSV"])
def test_any_pil_mode_becomes_rgb(mode):
    img = Image.fromarray(_pattern()).convert(mode) if mode not in ("I", "F") else Image.fromarray(
        _pattern()[..., 0].astype(np.int32 if mode == "I" else np.float32) * (1 if mode == "I" else 1 / 255))
    out = im.to_rgb(img)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8


def test_mode_without_rgb_conversion_is_a_decode_error_not_a_crash():
    lab = Image.fromarray(_pattern()).convert("LAB")
    data = _encode(lab, "TIFF")
    try:
        out = im.decode_image(data)
    except im.ImageRejected as e:
        assert e.reason == im.DECODE_ERROR
    else:
        assert out.shape == (48, 64, 3)


@pytest.mark.parametrize("data, reason", [
    (b"", im.EMPTY_FILE),
    (b"this is a text file, not a JPEG\n" * 20, im.NOT_AN_IMAGE),
    (b"\xff\xd8\xff\xe0" + b"\0" * 10, im.NOT_AN_IMAGE),
])
def test_garbage_is_rejected_with_its_reason(data, reason):
    with pytest.raises(im.ImageRejected) as e:
        im.decode_image(data)
    assert e.value.reason == reason


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_rejected_as_truncated(fmt):
    data = _encode(Image.fromarray(np.random.default_rng(1).integers(0, 255, (80, 80, 3), np.uint8)), fmt)
    with pytest.raises(im.ImageRejected) as e:
        im.decode_image(data[: len(data) // 2])
    assert e.value.reason == im.TRUNCATED, e.value


def test_pixel_bomb_is_rejected_from_its_header_before_any_pixel_is_decoded(monkeypatch):
    from PIL import ImageFile

    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or real_load(self))
    data = png_header_only(20000, 20000)
    with pytest.raises(im.ImageRejected) as e:
        im.decode_image(data)
    assert e.value.reason == im.TOO_LARGE and "20000x20000" in e.value.detail
    assert decoded == [], "the guard must run before any pixel is decoded (its speed: bench/behaviour_timings.py)"
    im.decode_image(_encode(Image.fromarray(_pattern()), "PNG"))
    assert decoded, "the probe must see an ordinary decode (else the check above proves nothing)"


def test_pixel_guard_is_configurable():
    data = _encode(Image.fromarray(_pattern()), "PNG")
    with pytest.raises(im.ImageRejected) as e:
        im.decode_image(data, max_pixels=100)
    assert e.value.reason == im.TOO_LARGE
    assert im.decode_image(data, max_pixels=48 * 64).shape == (48, 64, 3)


def test_tiny_image_is_rejected_as_too_small():
    with pytest.raises(im.ImageRejected) as e:
        im.decode_image(_encode(Image.new("RGB", (4, 30)), "PNG"))
    assert e.value.reason == im.TOO_SMALL


def test_unreadable_path_is_rejected_as_unreadable(tmp_path):
    with pytest.raises(im.ImageRejected) as e:
        im.load_image_file(str(tmp_path / "missing.jpg"), 32)
    assert e.value.reason == im.UNREADABLE


def test_center_crop_resize_and_png_round_trip():
    img = _pattern(60, 100)
    square = im.center_crop(img)
    assert square.shape == (60, 60, 3)
    np.testing.assert_array_equal(square, img[:, 20:80])
    assert im.center_crop(img, 40).shape == (40, 40, 3)
    small = im.resize(square, 32)
    assert small.shape == (32, 32, 3) and small.dtype == np.uint8
    np.testing.assert_array_equal(im.decode_png(im.encode_png(small)), small)


def test_make_grid_tiles_row_major():
    tiles = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (10, 20, 30)])
    grid = im.make_grid(tiles, ncols=2, padding=1)
    assert grid.shape == (1 + 2 * 5, 1 + 2 * 5, 3)
    assert grid[1, 1, 0] == 10 and grid[1, 6, 0] == 20 and grid[6, 1, 0] == 30 and grid[6, 6, 0] == 255


def test_list_image_files_is_recursive_sorted_and_skips_hidden(tmp_path):
    for rel in ["b/2.PNG", "a/1.jpg", "a/z/3.webp", ".git/x.png", "a/.thumb.jpg", "__MACOSX/a/1.jpg", "notes.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found, ignored = im.list_image_files(str(tmp_path))
    assert [rel for rel, _ in found] == ["a/1.jpg", "a/z/3.webp", "b/2.PNG"]
    assert all(path == str(tmp_path / rel) for rel, path in found)
    assert ignored == ["notes.txt"]
