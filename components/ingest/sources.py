"""Ingest sources: what a SOURCE string means, the items it holds, and how one item's bytes are read.

SOURCE is one of
  * a folder — every image file under it, recursively (hidden files and folders skipped);
  * a `.zip` archive — every image member (CelebA's `img_align_celeba.zip` layout works as is);
  * a glob pattern — `photos/*.jpg`, `data/**/*.png` (`**` crosses folders);
  * a single image file;
  * `avatars:N[:SEED]` — N built-in avatar faces (see `dcgan.avatars`).

Attribute labels: for folders, zips and globs, a CelebA `list_attr_celeba.txt` is used when found (inside the zip,
next to the source, or in an `Anno/` folder beside it) or when given explicitly; its rows are matched to images by
file name. Enumeration is deterministic (sorted ids) and happens once, in the driver; the bytes of each item are read
by the Beam workers (`read_item`).
"""

from __future__ import annotations

import glob as globlib
import hashlib
import os
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

from dcgan import avatars, fileio
from dcgan import images as imlib

MAX_FILE_BYTES = 64 << 20  # an input file or zip member larger than this is rejected before it is read whole
TOO_BIG = "file_too_big"  # rejection reason for files/members over MAX_FILE_BYTES (a 4 GB member, a zip bomb)
CORRUPT_ARCHIVE_MEMBER = "corrupt_archive_member"  # a zip member whose data cannot be extracted (bad CRC, ...)
CELEBA_ATTRIBUTES_FILE = "list_attr_celeba.txt"


class SourceError(ValueError):
    """A SOURCE that cannot be ingested at all (missing, empty, not a zip, ...); the message says why."""


class WorkItem(NamedTuple):
    """One input of the pipeline. `id` is stable and unique within the source (the report and the examples use it)."""

    id: str
    kind: str  # "file", "zip" or "avatar"
    path: str = ""  # the file, or the zip archive
    member: str = ""  # zip member name
    index: int = -1  # avatar index


@dataclass(frozen=True)
class Source:
    """A parsed SOURCE string. `items()` lists its work items; `ignored` lists files skipped as non-images."""

    spec: str
    kind: str  # "folder", "zip", "glob", "file" or "avatars"
    location: str = ""  # folder path, zip path, glob pattern or file path
    avatar_count: int = 0
    avatar_seed: int = 0
    attributes_file: str = ""  # a path on disk, or "zip:<member>" inside the archive; "" = none
    ignored: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_avatars(self) -> bool:
        return self.kind == "avatars"

    def items(self) -> list[WorkItem]:
        """All work items, sorted by id."""
        if self.kind == "avatars":
            return [WorkItem(avatars.avatar_id(self.avatar_seed, i), "avatar", index=i)
                    for i in range(self.avatar_count)]
        if self.kind == "zip":
            return [WorkItem(name, "zip", self.location, member=name) for name in _zip_image_members(self.location)]
        return [WorkItem(rel, "file", path) for rel, path in _listed_files(self)]

    def fingerprint(self) -> str:
        """A hash of what the source holds (names, sizes, modification times): it changes when the data does."""
        h = hashlib.sha256(f"{self.kind}\0{self.spec}\0".encode())
        if self.kind == "zip":
            size, mtime = _stat(self.location)
            h.update(f"{size}\0{mtime}".encode())
        elif self.kind != "avatars":
            for rel, path in _listed_files(self):
                try:
                    size, mtime = _stat(path)
                    h.update(f"{rel}\0{size}\0{mtime}\n".encode())
                except OSError:
                    h.update(f"{rel}\0?\n".encode())
        if self.attributes_file and not self.attributes_file.startswith("zip:"):
            st = os.stat(self.attributes_file)
            h.update(f"attr\0{self.attributes_file}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        return h.hexdigest()


def _is_image_name(name: str) -> bool:
    return imlib.is_image_name(name)


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in rel.split("/"))


def _stat(path: str) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of a local file or an object (OSError when missing)."""
    if not fileio.is_remote(path):
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    import tensorflow as tf

    fileio.ensure_filesystem(path)
    try:
        st = tf.io.gfile.stat(path)
    except tf.errors.OpError as e:
        raise OSError(f"{path}: {e.message}") from e
    return st.length, st.mtime_nsec


def _walk(folder: str) -> tuple[list[tuple[str, str]], list[str]]:
    if not fileio.is_remote(folder):
        return imlib.list_image_files(folder)
    import tensorflow as tf

    fileio.ensure_filesystem(folder)
    base = folder.rstrip("/")
    found, ignored = [], []
    for root, _dirs, names in tf.io.gfile.walk(base):
        for name in names:
            path = fileio.join(root, name)
            rel = path[len(base) + 1:]
            if _hidden(rel):
                continue
            (found if _is_image_name(name) else ignored).append((rel, path) if _is_image_name(name) else rel)
    return sorted(found), sorted(ignored)


def _glob_base(pattern: str) -> str:
    """The folder part of a glob before its first wildcard (ids are relative to it)."""
    parts = pattern.replace(os.sep, "/").split("/")
    static = []
    for part in parts[:-1]:
        if any(c in part for c in "*?["):
            break
        static.append(part)
    return "/".join(static) or "."


def _listed_files(source: Source) -> list[tuple[str, str]]:
    if source.kind == "folder":
        return _walk(source.location)[0]
    if source.kind == "file":
        return [(os.path.basename(source.location), source.location)]
    base = _glob_base(source.location)
    out = []
    remote = fileio.is_remote(source.location)
    matches = fileio.glob(source.location) if remote else globlib.glob(source.location, recursive=True)
    for path in matches:
        if _is_image_name(path) and not fileio.isdir(path):
            rel = path[len(base.rstrip("/")) + 1:] if remote else os.path.relpath(path, base).replace(os.sep, "/")
            if not _hidden(rel):
                out.append((rel, path))
    return sorted(out)


def _zip_names(path: str) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return [info.filename for info in zf.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError) as e:
        raise SourceError(f"{path!r} is not a readable zip archive: {e}") from e


def _zip_image_members(path: str) -> list[str]:
    return sorted(n for n in _zip_names(path) if _is_image_name(n) and not _hidden(n))


def _find_attributes_file(near: str, zip_members: list[str] | None = None) -> str:
    if zip_members is not None:
        inside = sorted(n for n in zip_members if os.path.basename(n) == CELEBA_ATTRIBUTES_FILE)
        if inside:
            return "zip:" + inside[0]
    folder = near if os.path.isdir(near) else os.path.dirname(os.path.abspath(near))
    candidates = [folder, os.path.join(folder, "Anno"), os.path.dirname(folder), os.path.join(os.path.dirname(folder),
                                                                                               "Anno")]
    for candidate in candidates:
        path = os.path.join(candidate, CELEBA_ATTRIBUTES_FILE)
        if os.path.isfile(path):
            return path
    return ""


def parse_source(spec: str, attributes_file: str | None = None) -> Source:
    """Parse and check a SOURCE string (see the module docstring). Raises SourceError when it cannot be used.

    attributes_file: an explicit CelebA-format attribute file; "" disables the automatic search; None searches.
    """
    spec = spec.strip()
    if not spec:
        raise SourceError("SOURCE is empty: give a folder, a .zip, a glob or avatars:N:SEED")
    try:
        parsed = avatars.parse_source(spec)
    except ValueError as e:
        raise SourceError(str(e)) from e
    if parsed is not None:
        return Source(spec, "avatars", avatar_count=parsed[0], avatar_seed=parsed[1])
    explicit = attributes_file
    if explicit and not os.path.isfile(explicit):
        raise SourceError(f"attribute file not found: {explicit!r}")
    if fileio.is_remote(spec) and not any(c in spec for c in "*?[") and not spec.lower().endswith(".zip"):
        _check_reachable(spec)
        if fileio.isdir(spec):
            found, ignored = _walk(spec)
            if not found:
                raise SourceError(f"no image files ({', '.join(imlib.IMAGE_EXTENSIONS)}) under {spec!r}")
            attr = explicit if explicit is not None else ""
            return Source(spec, "folder", spec.rstrip("/"), attributes_file=attr, ignored=tuple(ignored))
        if fileio.exists(spec) and _is_image_name(spec):
            return Source(spec, "file", spec, attributes_file=explicit or "")
        raise SourceError(f"source not found: {spec!r} (no object or prefix of that name)")
    if os.path.isdir(spec):
        found, ignored = _walk(spec)
        if not found:
            raise SourceError(f"no image files ({', '.join(imlib.IMAGE_EXTENSIONS)}) under {spec!r}")
        attr = explicit if explicit is not None else _find_attributes_file(spec)
        return Source(spec, "folder", os.path.abspath(spec), attributes_file=attr, ignored=tuple(ignored))
    if os.path.isfile(spec) and spec.lower().endswith(".zip"):
        names = _zip_names(spec)
        members = [n for n in names if _is_image_name(n) and not _hidden(n)]
        if not members:
            raise SourceError(f"the zip {spec!r} holds no image files")
        ignored = sorted(n for n in names if not _is_image_name(n) and not _hidden(n)
                         and os.path.basename(n) != CELEBA_ATTRIBUTES_FILE)
        attr = explicit if explicit is not None else _find_attributes_file(spec, names)
        return Source(spec, "zip", os.path.abspath(spec), attributes_file=attr, ignored=tuple(ignored))
    if os.path.isfile(spec):
        if not _is_image_name(spec):
            raise SourceError(f"{spec!r} is not an image file ({', '.join(imlib.IMAGE_EXTENSIONS)}) nor a .zip")
        return Source(spec, "file", os.path.abspath(spec), attributes_file=explicit or "")
    if any(c in spec for c in "*?["):
        source = Source(spec, "glob", spec)
        if not _listed_files(source):
            raise SourceError(f"the pattern {spec!r} matches no image files")
        attr = explicit if explicit is not None else _find_attributes_file(_glob_base(spec))
        return Source(spec, "glob", spec, attributes_file=attr)
    raise SourceError(f"source not found: {spec!r} (a folder, a .zip, a glob pattern or avatars:N:SEED)")


def _check_reachable(url: str) -> None:
    """Fail fast, with the URL and the variable to set, when an s3:// endpoint cannot be reached."""
    if url.startswith("s3://"):
        try:
            fileio.check_s3_reachable(url)
        except fileio.ObjectStoreError as e:
            raise SourceError(str(e)) from e


# -- reading one item (runs on the workers) --------------------------------------------------------------------------
_local = threading.local()


def _open_zip(path: str) -> zipfile.ZipFile:
    """One open ZipFile per archive and thread (ZipFile objects must not be shared between threads)."""
    cache = getattr(_local, "zips", None)
    if cache is None:
        cache = _local.zips = {}
    zf = cache.get(path)
    if zf is None:
        zf = cache[path] = zipfile.ZipFile(path)
    return zf


def read_item(item: WorkItem) -> bytes:
    """The raw bytes of a file or zip member. Raises ImageRejected (UNREADABLE, CORRUPT_ARCHIVE_MEMBER)."""
    if item.kind == "file":
        try:
            size, _ = _stat(item.path)
            if size > MAX_FILE_BYTES:
                raise imlib.ImageRejected(TOO_BIG, f"{size} bytes > the {MAX_FILE_BYTES}-byte cap")
            with fileio.open_file(item.path, "rb") as f:
                return f.read(MAX_FILE_BYTES + 1)
        except imlib.ImageRejected:
            raise
        except OSError as e:
            raise imlib.ImageRejected(imlib.UNREADABLE, f"{type(e).__name__}: {e.strerror or e}") from e
    if item.kind == "zip":
        try:
            zf = _open_zip(item.path)
        except (OSError, zipfile.BadZipFile) as e:
            raise imlib.ImageRejected(imlib.UNREADABLE, f"cannot open {item.path}: {e}") from e
        try:
            info = zf.getinfo(item.member)
            if info.file_size > MAX_FILE_BYTES:
                raise imlib.ImageRejected(TOO_BIG, f"member of {info.file_size} bytes (compressed {info.compress_size})"
                                                   f" > the {MAX_FILE_BYTES}-byte cap")
            with zf.open(info) as member:  # read at most cap+1: a header that lies about the size cannot blow up
                data = member.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise imlib.ImageRejected(TOO_BIG, f"member inflates past the {MAX_FILE_BYTES}-byte cap")
            return data
        except imlib.ImageRejected:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, KeyError,
                ValueError) as e:
            raise imlib.ImageRejected(CORRUPT_ARCHIVE_MEMBER, f"{type(e).__name__}: {e}") from e
        except OSError as e:
            raise imlib.ImageRejected(imlib.UNREADABLE, f"{type(e).__name__}: {e}") from e
    raise ValueError(f"read_item: items of kind {item.kind!r} have no bytes")


# -- CelebA attributes -----------------------------------------------------------------------------------------------
def parse_celeba_attributes(text: str) -> dict[str, dict[str, str]]:
    """`list_attr_celeba.txt` → {image file name: {attribute: "1" or "0"}}.

    Format: a count line, a line of attribute names, then `name v1 v2 ...` rows with ±1 values (-1 → "0").
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return {}
    start = 1 if len(lines[0]) == 1 and lines[0][0].isdigit() else 0
    names = lines[start]
    table: dict[str, dict[str, str]] = {}
    for row in lines[start + 1:]:
        if len(row) != len(names) + 1:
            continue
        table[row[0]] = {name: "1" if value == "1" else "0" for name, value in zip(names, row[1:], strict=True)}
    return table


_attribute_tables: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
_attribute_lock = threading.Lock()


def load_attributes(source: Source) -> dict[str, dict[str, str]]:
    """The attribute table of a source (empty when it has none), parsed once per process."""
    if not source.attributes_file:
        return {}
    key = (source.location, source.attributes_file)
    with _attribute_lock:
        table = _attribute_tables.get(key)
        if table is None:
            if source.attributes_file.startswith("zip:"):
                with zipfile.ZipFile(source.location) as zf:
                    text = zf.read(source.attributes_file[4:]).decode("utf-8", errors="replace")
            else:
                with open(source.attributes_file, encoding="utf-8", errors="replace") as f:
                    text = f.read()
            table = _attribute_tables[key] = parse_celeba_attributes(text)
        return table


def attributes_for(source: Source, item: WorkItem) -> dict[str, str]:
    """The CelebA-style labels of one file/member (matched by file name), or {}."""
    table = load_attributes(source)
    return table.get(os.path.basename(item.id), {}) if table else {}
