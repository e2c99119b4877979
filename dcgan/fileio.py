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


# --- object stores -------------------------------------------------------------------------------------------------
# Every path the project reads or writes may be local, gs://... or s3://... . TensorFlow reaches them through
# tf.io.gfile: gs:// is built in; s3:// moved to tensorflow-io in TF 2.6, whose filesystem plugin registers itself when
# the package is imported, in each process (TFX executors included). An S3-compatible endpoint (MinIO, a loopback
# test server) is named once, by AWS_ENDPOINT_URL as boto3 and the AWS CLI read it; tensorflow-io's own S3_*
# variables are derived from it.

REMOTE_SCHEMES = ("gs://", "s3://")


def is_remote(path: str) -> bool:
    """True for object-store URLs (gs://, s3://)."""
    return str(path).startswith(REMOTE_SCHEMES)


def s3_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The variables tensorflow-io's S3 filesystem reads, derived from AWS_ENDPOINT_URL (values already set win)."""
    env = os.environ if environ is None else environ
    derived: dict[str, str] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        derived["S3_ENDPOINT"] = endpoint
        if endpoint.startswith("http://"):
            derived["S3_USE_HTTPS"] = "0"
            derived["S3_VERIFY_SSL"] = "0"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        derived["AWS_REGION"] = region
    return {k: v for k, v in derived.items() if k not in env}


def ensure_filesystem(path: str) -> None:
    """Make `path`'s scheme usable through tf.io.gfile in this process (idempotent, cheap after the first call)."""
    if not str(path).startswith("s3://"):
        return
    from dcgan import stack

    unsupported = stack.s3_support()
    if unsupported:
        raise RuntimeError(f"{path}: {unsupported}")
    os.environ.update(s3_environment())
    import tensorflow_io  # noqa: F401 - registers the s3:// filesystem with TensorFlow


def s3_was_used() -> bool:
    """Whether this process loaded tensorflow-io's S3 filesystem (see `exit_process`)."""
    import sys

    return "tensorflow_io" in sys.modules


def exit_process(code: int) -> None:
    """End the process with `code`. After tensorflow-io's S3 filesystem was used, its AWS SDK aborts during C++
    static destruction ("pure virtual method called", exit 134; tensorflow/io#2039, fixed upstream after 0.37.1,
    the last release): flush Python's streams and logs, then leave with os._exit so a finished job reports success.
    Without S3 this is plain `sys.exit`."""
    import logging
    import sys

    if not s3_was_used():
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream must not change the exit code
            pass
    os._exit(code)
