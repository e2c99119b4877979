"""Ingest sources: what a SOURCE string means, the items it holds, and how one item's bytes are read.

SOURCE is one of
  * a folder — every image file under it, recursively (hidden files and folders skipped);
  * a `.zip` archive — every image member (CelebA's `img_align_celeba.zip` layout works as is);
  * a glob pattern — `photos/*.jpg`, `data/**/*.png` (`**` crosses folders);
  * a single image file;
  * `avatars:N[:SEED]` — N built-in avatar faces (see `dcgan.avatars`).
Folders, zips, globs and files may be local or on an object store (`s3://`, `gs://`).

Attribute labels: for folders, zips and globs, a CelebA `list_attr_celeba.txt` is used when found (inside the zip,
next to the source, or in an `Anno/` folder beside it) or when given explicitly; its rows are matched to images by
file name.

Where the work happens: `parse_source` (the driver) only checks that the source can be used, with bounded probes
(the first image of a folder or glob, a zip's end record); `iter_listing` lists the items and runs inside the
pipeline (a Beam worker), as does `read_item`, which reads one item's bytes. Object stores are reached through
Beam's filesystems there (`beamio`). Nothing is listed into the job graph.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import os
import threading
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from components.ingest import beamio
from dcgan import avatars, fileio
from dcgan import images as imlib

MAX_FILE_BYTES = 64 << 20  # an input file or zip member larger than this is rejected before it is read whole
TOO_BIG = "file_too_big"  # rejection reason for files/members over MAX_FILE_BYTES (a 4 GB member, a zip bomb)
CORRUPT_ARCHIVE_MEMBER = "corrupt_archive_member"  # a zip member whose data cannot be extracted (bad CRC, ...)
CELEBA_ATTRIBUTES_FILE = "list_attr_celeba.txt"
PROBE_OBJECTS = 10_000  # objects the driver lists at most to find a first image on an object store

ITEM, IGNORED = "item", "ignored"  # the kinds of what `iter_listing` yields


class SourceError(ValueError):
    """A SOURCE that cannot be ingested at all (missing, empty, not a zip, ...); the message says why."""


class WorkItem(NamedTuple):
    """One input of the pipeline. `id` is stable and unique within the source (the report and the examples use it)."""

    id: str
    kind: str  # "file", "zip" or "avatar"
    path: str = ""  # the file, or the zip archive
    member: str = ""  # zip member name
    index: int = -1  # avatar index
    size: int = -1  # bytes (of the file or the inflated member) when the listing knows it; -1 = ask at read time


@dataclass(frozen=True)
class Source:
    """A parsed SOURCE string. `iter_listing(source)` lists it; `items()` and `ignored` are that listing, sorted
    (for the driver, tests and tools: the pipeline lists inside its workers)."""

    spec: str
    kind: str  # "folder", "zip", "glob", "file" or "avatars"
    location: str = ""  # folder path, zip path, glob pattern or file path
    avatar_count: int = 0
    avatar_seed: int = 0
    attributes_file: str = ""  # a path on disk; "" = none
    attributes_in_archive: bool = False  # zip: look for list_attr_celeba.txt inside first (when the listing runs)

    @property
    def is_avatars(self) -> bool:
        return self.kind == "avatars"

    def items(self) -> list[WorkItem]:
        """All work items, sorted by id."""
        return sorted((v for k, v in iter_listing(self) if k == ITEM), key=lambda item: item.id)

    @property
    def ignored(self) -> tuple[str, ...]:
        """Files (members) skipped because they are not images by name, sorted."""
        return tuple(sorted(v for k, v in iter_listing(self) if k == IGNORED))

    def fingerprint(self) -> str:
        """A hash of what the source holds (names, sizes, modification times): it changes when the data does."""
        h = hashlib.sha256(f"{self.kind}\0{self.spec}\0".encode())
        if self.kind == "zip":
            size, mtime = _stat(self.location)
            h.update(f"{size}\0{mtime}".encode())
        elif self.kind != "avatars":
            for item in self.items():
                try:
                    size, mtime = _stat(item.path)
                    h.update(f"{item.id}\0{size}\0{mtime}\n".encode())
                except OSError:
                    h.update(f"{item.id}\0?\n".encode())
        if self.attributes_file:
            st = os.stat(self.attributes_file)
            h.update(f"attr\0{self.attributes_file}\0{st.st_size}\0{st.st_mtime_ns}".encode())
        return h.hexdigest()


def _is_image_name(name: str) -> bool:
    return imlib.is_image_name(name)


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in rel.split("/"))


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


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


def _glob_base(pattern: str) -> str:
    """The folder part of a glob before its first wildcard (ids are relative to it)."""
    parts = pattern.replace(os.sep, "/").split("/")
    static = []
    for part in parts[:-1]:
        if _is_glob(part):
            break
        static.append(part)
    return "/".join(static) or "."


# -- listing (runs inside the pipeline) ------------------------------------------------------------------------------
def iter_listing(source: Source) -> Iterator[tuple[str, WorkItem | str]]:
    """What `source` holds, in no particular order: (ITEM, WorkItem) for every input and (IGNORED, relative name)
    for every file or member skipped because it is not an image by name. Hidden names are left out."""
    if source.kind == "avatars":
        for i in range(source.avatar_count):
            yield ITEM, WorkItem(avatars.avatar_id(source.avatar_seed, i), "avatar", index=i)
    elif source.kind == "file":
        yield ITEM, WorkItem(os.path.basename(source.location.rstrip("/")), "file", source.location)
    elif source.kind == "zip":
        yield from _list_zip(source.location)
    elif source.kind == "folder":
        yield from _list_folder(source.location)
    elif source.kind == "glob":
        yield from _list_glob(source.location)
    else:
        raise ValueError(f"unknown source kind {source.kind!r}")


def _list_folder(folder: str) -> Iterator[tuple[str, WorkItem | str]]:
    if not fileio.is_remote(folder):
        # the project's walk, not Beam's local match: Beam's drops broken links (they must be reported as
        # unreadable) and does not follow symlinked folders (followed here, each real folder once)
        found, ignored = imlib.list_image_files(folder)
        for rel, path in found:
            yield ITEM, WorkItem(rel, "file", path)
        for rel in ignored:
            yield IGNORED, rel
        return
    base = folder.rstrip("/")
    for path, size in beamio.match(base + "/**"):
        rel = path[len(base) + 1:]
        if _hidden(rel):
            continue
        if _is_image_name(rel):
            yield ITEM, WorkItem(rel, "file", path, size=size)
        else:
            yield IGNORED, rel


def _list_glob(pattern: str) -> Iterator[tuple[str, WorkItem | str]]:
    base = _glob_base(pattern).rstrip("/")
    if fileio.is_remote(pattern):
        for path, size in beamio.match(pattern):
            rel = path[len(base) + 1:]
            if _is_image_name(path) and not _hidden(rel):
                yield ITEM, WorkItem(rel, "file", path, size=size)
        return
    for path in globlib.iglob(pattern, recursive=True):
        if _is_image_name(path) and not os.path.isdir(path):
            rel = os.path.relpath(path, base or ".").replace(os.sep, "/")
            if not _hidden(rel):
                yield ITEM, WorkItem(rel, "file", path)


def _list_zip(path: str) -> Iterator[tuple[str, WorkItem | str]]:
    """The members of a zip, from its central directory (read by seeking, on an object store too)."""
    try:
        infos = _open_zip(path).infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise SourceError(f"{path!r} is not a readable zip archive: {e}") from e
    for info in infos:
        name = info.filename
        if info.is_dir() or _hidden(name):
            continue
        if _is_image_name(name):
            yield ITEM, WorkItem(name, "zip", path, member=name, size=info.file_size)
        elif os.path.basename(name) != CELEBA_ATTRIBUTES_FILE:
            yield IGNORED, name


# -- checking a SOURCE string (the driver) ---------------------------------------------------------------------------
def _first_local_image(folder: str) -> str | None:
    """The first image file found under a local folder (the same rules as the listing), or None."""
    return next((path for rel, path in imlib.iter_folder_files(folder) if imlib.is_image_name(rel)), None)


def _probe_remote(pattern: str, base: str) -> bool | None:
    """True when an image is among the first PROBE_OBJECTS objects matching `pattern`, False when none is and
    that was every object, None when the probe stopped early (the pipeline's listing decides)."""
    found = beamio.match(pattern, limit=PROBE_OBJECTS)
    base = base.rstrip("/")
    if any(_is_image_name(p) and not _hidden(p[len(base) + 1:]) for p, _ in found):
        return True
    return None if len(found) >= PROBE_OBJECTS else False


def _find_attributes_file(near: str) -> str:
    if fileio.is_remote(near):
        return ""
    folder = near if os.path.isdir(near) else os.path.dirname(os.path.abspath(near))
    candidates = [folder, os.path.join(folder, "Anno"), os.path.dirname(folder), os.path.join(os.path.dirname(folder),
                                                                                               "Anno")]
    for candidate in candidates:
        path = os.path.join(candidate, CELEBA_ATTRIBUTES_FILE)
        if os.path.isfile(path):
            return path
    return ""


def _check_zip(path: str) -> None:
    """A cheap check that `path` is a zip: its end-of-central-directory record only (the members are listed by the
    pipeline)."""
    try:
        with beamio.open_binary(path) as f:
            ok = zipfile.is_zipfile(f)
    except OSError as e:
        raise SourceError(f"{path!r} is not a readable zip archive: {e}") from e
    if not ok:
        raise SourceError(f"{path!r} is not a readable zip archive: File is not a zip file")


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
    if fileio.is_remote(spec):
        return _parse_remote(spec, explicit)
    if os.path.isdir(spec):
        if _first_local_image(spec) is None:
            raise SourceError(f"no image files ({', '.join(imlib.IMAGE_EXTENSIONS)}) under {spec!r}")
        attr = explicit if explicit is not None else _find_attributes_file(spec)
        return Source(spec, "folder", os.path.abspath(spec), attributes_file=attr)
    if os.path.isfile(spec) and spec.lower().endswith(".zip"):
        _check_zip(spec)
        attr = explicit if explicit is not None else _find_attributes_file(spec)
        return Source(spec, "zip", os.path.abspath(spec), attributes_file=attr, attributes_in_archive=explicit is None)
    if os.path.isfile(spec):
        if not _is_image_name(spec):
            raise SourceError(f"{spec!r} is not an image file ({', '.join(imlib.IMAGE_EXTENSIONS)}) nor a .zip")
        return Source(spec, "file", os.path.abspath(spec), attributes_file=explicit or "")
    if _is_glob(spec):
        if next((v for k, v in _list_glob(spec) if k == ITEM), None) is None:
            raise SourceError(f"the pattern {spec!r} matches no image files")
        attr = explicit if explicit is not None else _find_attributes_file(_glob_base(spec))
        return Source(spec, "glob", spec, attributes_file=attr)
    raise SourceError(f"source not found: {spec!r} (a folder, a .zip, a glob pattern or avatars:N:SEED)")


def _parse_remote(spec: str, explicit: str | None) -> Source:
    _check_reachable(spec)
    beamio.ensure_options(beamio.s3_pipeline_args())
    attr = explicit or ""
    if _is_glob(spec):
        if _probe_remote(spec, _glob_base(spec)) is False:
            raise SourceError(f"the pattern {spec!r} matches no image files")
        return Source(spec, "glob", spec, attributes_file=attr)
    if spec.lower().endswith(".zip"):
        if not fileio.exists(spec):
            raise SourceError(f"source not found: {spec!r} (no object of that name)")
        _check_zip(spec)
        return Source(spec, "zip", spec, attributes_file=attr, attributes_in_archive=explicit is None)
    if fileio.isdir(spec):
        base = spec.rstrip("/")
        if _probe_remote(base + "/**", base) is False:
            raise SourceError(f"no image files ({', '.join(imlib.IMAGE_EXTENSIONS)}) under {spec!r}")
        return Source(spec, "folder", base, attributes_file=attr)
    if fileio.exists(spec) and _is_image_name(spec):
        return Source(spec, "file", spec, attributes_file=attr)
    raise SourceError(f"source not found: {spec!r} (no object or prefix of that name)")


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
    """One open ZipFile per archive and thread (ZipFile objects must not be shared between threads). An archive on
    an object store is read through Beam's filesystems by seeking: the central directory, then member by member."""
    cache = getattr(_local, "zips", None)
    if cache is None:
        cache = _local.zips = {}
    zf = cache.get(path)
    if zf is None:
        zf = cache[path] = zipfile.ZipFile(beamio.open_binary(path))
    return zf


def read_item(item: WorkItem) -> bytes:
    """The raw bytes of a file or zip member, checked against MAX_FILE_BYTES before being read whole (and read at
    most that far). Raises ImageRejected (TOO_BIG, UNREADABLE, CORRUPT_ARCHIVE_MEMBER)."""
    if item.kind == "file":
        try:
            size = item.size if item.size >= 0 else beamio.size_of(item.path)
            if size > MAX_FILE_BYTES:
                raise imlib.ImageRejected(TOO_BIG, f"{size} bytes > the {MAX_FILE_BYTES}-byte cap")
            with beamio.open_binary(item.path) as f:
                data = f.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:  # it grew since it was listed
                raise imlib.ImageRejected(TOO_BIG, f"more than the {MAX_FILE_BYTES}-byte cap")
            return data
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


_attribute_tables: dict[tuple[str, str, bool], dict[str, dict[str, str]]] = {}
_attribute_lock = threading.Lock()


def _attributes_text(source: Source) -> str | None:
    if source.attributes_in_archive:
        zf = _open_zip(source.location)
        inside = sorted(n for n in zf.namelist() if os.path.basename(n) == CELEBA_ATTRIBUTES_FILE)
        if inside:
            return zf.read(inside[0]).decode("utf-8", errors="replace")
    if source.attributes_file:
        with open(source.attributes_file, encoding="utf-8", errors="replace") as f:
            return f.read()
    return None


def load_attributes(source: Source) -> dict[str, dict[str, str]]:
    """The attribute table of a source (empty when it has none), parsed once per process."""
    if not source.attributes_file and not source.attributes_in_archive:
        return {}
    key = (source.location, source.attributes_file, source.attributes_in_archive)
    with _attribute_lock:
        table = _attribute_tables.get(key)
        if table is None:
            text = _attributes_text(source)
            table = _attribute_tables[key] = parse_celeba_attributes(text) if text else {}
        return table


def attributes_for(source: Source, item: WorkItem) -> dict[str, str]:
    """The CelebA-style labels of one file/member (matched by file name), or {}."""
    table = load_attributes(source)
    return table.get(os.path.basename(item.id), {}) if table else {}
