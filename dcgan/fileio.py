"""Atomic file writes: write a temporary sibling, then rename it into place, so a reader (a resumed run, a model
server, a cache lookup) sees either the old file or the whole new one, never half of it."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any


def atomic_write(path: str, write: Callable[[str], None]) -> str:
    """Call `write(tmp_path)`, then rename tmp_path to `path`; the temporary file is removed if anything fails.
    Returns `path`."""
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_json_atomic(path: str, obj: Any, **dump_kwargs: Any) -> str:
    """`json.dump(obj, ..., **dump_kwargs)` to `path`, atomically (with a trailing newline)."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, **dump_kwargs)
            f.write("\n")

    return atomic_write(path, write)


def write_bytes_atomic(path: str, data: bytes) -> str:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)
