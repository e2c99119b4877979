"""The bad-input corpus: every bad case of the issue mixed with good photos, as a folder and as a zip.

Ingest must finish (no crash), keep 100% of the good files, and list each bad file in the report with its reason.
"""

from __future__ import annotations

import glob
import io
import multiprocessing
import os
import shutil
import struct
import zipfile
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from components.ingest import report as reportlib
from components.ingest import sources
from components.ingest.config import IngestConfig
from components.ingest.pipeline import run_ingest
from dcgan import faces, schema
from dcgan import images as imlib

IS_ROOT = os.geteuid() == 0


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _photo(shift: int, angle: float = 0.0, scale: float = 0.9) -> np.ndarray:
    """The astronaut, moved a little (each good file has distinct content, so none is a duplicate)."""
    astronaut = data.astronaut()
    m = cv2.getRotationMatrix2D((256 + shift, 256 - shift), angle, scale)
    return cv2.warpAffine(astronaut, m, (512, 512), borderMode=cv2.BORDER_REFLECT_101)


def _bomb_header() -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _good_files() -> dict[str, bytes]:
    rgba = np.dstack([_photo(6), np.full((512, 512), 255, np.uint8)])
    rgba[:40, :, 3] = 0  # a transparent band at the top
    grey16 = (cv2.cvtColor(_photo(8), cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257)
    rotated_on_disk = np.ascontiguousarray(np.rot90(_photo(0), k=1))  # stored sideways...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with "rotate 90° clockwise to display"
    return {
        "good_plain.jpg": _encode(Image.fromarray(_photo(0)), "JPEG", quality=92),
        "good_tilted.png": _encode(Image.fromarray(_photo(2, angle=12, scale=0.7)), "PNG"),
        "good.webp": _encode(Image.fromarray(_photo(4)), "WEBP", quality=90),
        "good_palette.gif": _encode(Image.fromarray(_photo(10)).convert("P", palette=Image.Palette.ADAPTIVE), "GIF"),
        "good.bmp": _encode(Image.fromarray(_photo(12)), "BMP"),
        "good_cmyk.jpg": _encode(Image.fromarray(_photo(14)).convert("CMYK"), "JPEG", quality=92),
        "good_rgba.png": _encode(Image.fromarray(rgba, "RGBA"), "PNG"),
        "good_16bit.png": _encode(Image.fromarray(grey16), "PNG"),
        "good_exif_rotated.jpg": _encode(Image.fromarray(rotated_on_disk), "JPEG", quality=92, exif=exif.tobytes()),
        "nested/deeper/good_nested.jpg": _encode(Image.fromarray(_photo(16)), "JPEG", quality=92),
    }


def _bad_files(good: dict[str, bytes]) -> dict[str, tuple[bytes, str]]:
    """name → (bytes, reason in align mode)."""
    truncated = _encode(Image.fromarray(_photo(20)), "JPEG", quality=92)
    return {
        "truncated.jpg": (truncated[: len(truncated) // 2], imlib.TRUNCATED),
        "zero_bytes.jpg": (b"", imlib.EMPTY_FILE),
        "text_named.jpg": (b"Dear diary, today I was a JPEG.\n" * 30, imlib.NOT_AN_IMAGE),
        "bomb_20000x20000.png": (_bomb_header(), imlib.TOO_LARGE),
        "tiny.png": (_encode(Image.new("RGB", (5, 5), "red"), "PNG"), imlib.TOO_SMALL),
        "no_face_coffee.jpg": (_encode(Image.fromarray(data.coffee()), "JPEG"), faces.NO_FACE),
        "plain_copy.jpg": (good["good_plain.jpg"], reportlib.DUPLICATE),  # kept once: as good_plain.jpg
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder with every case, plus the same files in a zip that also holds a corrupt member."""
    root = tmp_path_factory.mktemp("corpus")
    folder = root / "photos"
    good, bad = _good_files(), {}
    bad = _bad_files(good)
    for name, payload in [*good.items(), *((n, b) for n, (b, _) in bad.items())]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(payload)
    (folder / "notes.txt").write_text("not an image by name: listed as ignored")
    os.symlink(folder / "gone.jpg", folder / "broken_link.jpg")  # unreadable for everyone, root included
    locked = folder / "locked.jpg"  # unreadable by permissions (root reads it anyway)
    locked.write_bytes(_encode(Image.fromarray(_photo(18)), "JPEG", quality=92))
    locked.chmod(0)
    expected = {name: reason for name, (_, reason) in bad.items()}
    expected["broken_link.jpg"] = imlib.UNREADABLE
    good_names = set(good)
    if IS_ROOT:
        good_names.add("locked.jpg")
    else:
        expected["locked.jpg"] = imlib.UNREADABLE

    archive = root / "photos.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in [*good.items(), *((n, b) for n, (b, _) in bad.items())]:
            zf.writestr(name, payload)
        zf.writestr("corrupt_member.jpg", good["good_plain.jpg"][:2000] + bytes(range(256)) * 40)
    _corrupt_member(str(archive), "corrupt_member.jpg")
    yield {"folder": str(folder), "zip": str(archive), "good": good_names, "bad": expected}
    locked.chmod(0o644)


def _corrupt_member(archive: str, member: str) -> None:
    """Flip bytes inside one member's compressed data (its CRC no longer matches)."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    with open(archive, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        start = info.header_offset + 30 + name_len + extra_len
        f.seek(start + info.compress_size // 2)
        chunk = f.read(64)
        f.seek(start + info.compress_size // 2)
        f.write(bytes(b ^ 0x5A for b in chunk))


def _check(report: reportlib.IngestReport, out: str, good: set[str], bad: dict[str, str]) -> dict[str, dict]:
    written = {r[schema.ID_KEY]: r for split in schema.SPLITS
               for r in schema.read_examples(sorted(glob.glob(schema.split_pattern(out, split))))}
    got = {r.id: r.reason for r in report.rejects}
    assert set(written) == good, f"good files lost: {sorted(good - set(written))}; kept bad: " \
                                 f"{sorted(set(written) - good)}"
    assert got == bad, f"wrong rejects: {sorted(set(got.items()) ^ set(bad.items()))}"
    assert report.input_count == len(good) + len(bad) == report.written_total + len(report.rejects)
    return written


def test_corrupt_folder_in_align_mode(corpus, tmp_path):
    out = str(tmp_path / "out")
    report = run_ingest(IngestConfig(source=corpus["folder"], size=64, mode=faces.ALIGN), out)
    _check(report, out, corpus["good"], corpus["bad"])
    assert report.ignored == ["notes.txt"]
    assert [r.detail for r in report.rejects if r.reason == reportlib.DUPLICATE] == ["same image as good_plain.jpg"]
    text = open(os.path.join(out, reportlib.REPORT_TEXT)).read()
    for name, reason in corpus["bad"].items():
        assert name in text and reason in text


def test_corrupt_zip_in_align_mode(corpus, tmp_path):
    out = str(tmp_path / "out")
    report = run_ingest(IngestConfig(source=corpus["zip"], size=64, mode=faces.ALIGN), out)
    good = corpus["good"] - {"locked.jpg"}
    bad = {k: v for k, v in corpus["bad"].items() if k not in ("broken_link.jpg", "locked.jpg")}
    bad["corrupt_member.jpg"] = sources.CORRUPT_ARCHIVE_MEMBER
    _check(report, out, good, bad)


def test_corrupt_folder_in_center_crop_mode_keeps_the_faceless_photo_and_applies_exif(corpus, tmp_path):
    out = str(tmp_path / "out")
    report = run_ingest(IngestConfig(source=corpus["folder"], size=64, eval_ratio=0.0), out)
    bad = {k: v for k, v in corpus["bad"].items() if v != faces.NO_FACE}
    written = _check(report, out, corpus["good"] | {"no_face_coffee.jpg"}, bad)
    upright = imlib.decode_png(written["good_plain.jpg"][schema.IMAGE_KEY]).astype(int)
    from_exif = imlib.decode_png(written["good_exif_rotated.jpg"][schema.IMAGE_KEY]).astype(int)
    sideways = np.rot90(upright, k=1)
    assert np.abs(from_exif - upright).mean() < 6, "the EXIF-rotated photo did not come out upright"
    assert np.abs(sideways - upright).mean() > 20, "the test picture must look different when rotated"


def _read_as_nobody(path: str, queue) -> None:
    os.setgid(65534)
    os.setuid(65534)
    try:
        sources.read_item(sources.WorkItem("locked.jpg", "file", path))
        queue.put("read")
    except imlib.ImageRejected as e:
        queue.put(e.reason)


@pytest.mark.skipif(not IS_ROOT, reason="as a normal user the corpus tests already cover permission errors")
def test_permission_denied_is_unreadable_for_an_unprivileged_reader(tmp_path):
    """Root reads mode-000 files, so check the permission path in a child that dropped to `nobody`."""
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o755)
    tmp_path.chmod(0o755)
    locked = folder / "locked.jpg"
    locked.write_bytes(b"\xff\xd8\xff\xe0 secret")
    locked.chmod(0)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_as_nobody, args=(str(locked), queue))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == imlib.UNREADABLE
    shutil.rmtree(folder, ignore_errors=True)
