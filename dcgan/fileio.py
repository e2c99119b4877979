"""Atomic file writes: write a temporary sibling, then rename it into place, so a reader (a resumed run, a model
server, a cache lookup) sees either the old file or the whole new one, never half of it."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

from dcgan.errors import DcganError


def atomic_write(path: str, write: Callable[[str], None]) -> str:
    """Call `write(tmp_path)`, then rename tmp_path to `path`; the temporary file is removed if anything fails.
    Returns `path`. On an object store (no atomic rename) `write` fills a local temporary file that is then
    uploaded in one PUT: an object appears whole or not at all."""
    if is_remote(path):
        import tempfile

        import tensorflow as tf

        ensure_filesystem(path)
        with tempfile.TemporaryDirectory(prefix="dcgan-upload-") as d:
            local = os.path.join(d, os.path.basename(path.rstrip("/")) or "object")
            write(local)
            tf.io.gfile.copy(local, path, overwrite=True)
        return path
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


# tensorflow-io 0.37.1's S3 client reads two time limits, once per process, when it first makes a client
# (s3_filesystem.cc, GetDefaultClientConfig): S3_CONNECT_TIMEOUT_MSEC and S3_REQUEST_TIMEOUT_MSEC, both 300000 (5 min)
# by default, so an endpoint that drops packets hangs each attempt for 5 minutes. Bounded defaults, used only where
# the user set nothing: 10 s to connect; 60 s without a byte moving (the AWS SDK applies the request timeout as a
# low-speed limit, so large uploads and downloads are not cut off). The number of retries is NOT configurable there:
# it sets no retry strategy, the AWS SDK's default (10 retries, exponential back-off) applies, and AWS_MAX_ATTEMPTS
# does not change it (measured: a listdir against a refused port took ~52 s with and without AWS_MAX_ATTEMPTS=1).
# That is why check_s3_reachable probes with boto3 first. Measured against a loopback listener that accepts and
# never answers: tf.io.gfile.exists had not returned after 420 s with the defaults; with
# S3_REQUEST_TIMEOUT_MSEC=1000 it failed after 79 s (the SDK's retries), so the limits below do bound a stall.
S3_CLIENT_LIMITS = {"S3_CONNECT_TIMEOUT_MSEC": "10000", "S3_REQUEST_TIMEOUT_MSEC": "60000"}


def s3_client_limits(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The S3_CLIENT_LIMITS the environment does not set already."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in S3_CLIENT_LIMITS.items() if k not in env}


def ensure_filesystem(path: str) -> None:
    """Make `path`'s scheme usable through tf.io.gfile in this process (idempotent, cheap after the first call)."""
    if not str(path).startswith("s3://"):
        return
    from dcgan import stack

    unsupported = stack.s3_support()
    if unsupported:
        raise RuntimeError(f"{path}: {unsupported}")
    os.environ.update(s3_environment())
    os.environ.update(s3_client_limits())
    import tensorflow_io  # noqa: F401 - registers the s3:// filesystem with TensorFlow


class ObjectStoreError(DcganError):
    """An object store that cannot be used: unreachable endpoint, no credentials, missing bucket."""


def check_s3_reachable(url: str, *, attempts: int = 2, timeout_s: float = 5.0) -> None:
    """Probe the bucket of an s3:// `url` with boto3 (bounded: `attempts` tries of `timeout_s` each; tensorflow-io
    itself retries for minutes) and raise ObjectStoreError naming the URL and what to set when it cannot be used."""
    if not str(url).startswith("s3://"):
        return
    import boto3
    import botocore.exceptions as bex
    from botocore.config import Config

    bucket = str(url)[len("s3://"):].split("/", 1)[0]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    where = endpoint or "the AWS default endpoint"
    client = boto3.session.Session().client("s3", endpoint_url=endpoint or None, config=Config(  # fresh credentials
        connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": attempts, "mode": "standard"}))
    try:
        client.head_bucket(Bucket=bucket)
    except bex.NoCredentialsError as e:
        raise ObjectStoreError(f"{url}: no S3 credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                               "(or AWS_PROFILE)") from e
    except (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ReadTimeoutError) as e:
        raise ObjectStoreError(f"{url}: cannot reach the S3 endpoint {where} ({attempts} tries, {timeout_s:g} s "
                               "each); set AWS_ENDPOINT_URL to your S3/MinIO server, e.g. "
                               "AWS_ENDPOINT_URL=http://127.0.0.1:9000") from e
    except bex.ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise ObjectStoreError(f"{url}: bucket {bucket!r} does not exist at {where}") from e
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise ObjectStoreError(f"{url}: access to bucket {bucket!r} at {where} denied ({code}); check "
                                   "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY") from e
        raise ObjectStoreError(f"{url}: S3 error {code} at {where}: {e}") from e


def ensure_filesystems(*paths: str) -> None:
    """`ensure_filesystem` for each path (TFX executors call it with their artifact URIs and sources)."""
    for path in paths:
        if path:
            ensure_filesystem(str(path))


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


# --- path operations on local paths and object stores alike -------------------------------------------------------


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def join(base: str, *parts: str) -> str:
    """os.path.join for local paths; '/'-joined for URLs (os.path.join would do the same on POSIX, but say it)."""
    if is_remote(base):
        out = str(base)
        for part in parts:
            out = out.rstrip("/") + "/" + str(part).lstrip("/")
        return out
    return os.path.join(base, *parts)


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    ensure_filesystem(path)
    return _gfile().exists(path)


def isdir(path: str) -> bool:
    if not is_remote(path):
        return os.path.isdir(path)
    ensure_filesystem(path)
    return _gfile().isdir(path)


def makedirs(path: str) -> str:
    """mkdir -p (object stores: a no-op marker where the filesystem needs one)."""
    if is_remote(path):
        ensure_filesystem(path)
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)
    return path


def listdir(path: str) -> list[str]:
    """Names directly under `path`, sorted, without trailing slashes."""
    if not is_remote(path):
        return sorted(os.listdir(path))
    ensure_filesystem(path)
    return sorted({n.rstrip("/") for n in _gfile().listdir(path)})


def glob(pattern: str) -> list[str]:
    if not is_remote(pattern):
        import glob as _glob

        return sorted(_glob.glob(pattern))
    ensure_filesystem(pattern)
    return sorted(_gfile().glob(pattern))


def open_file(path: str, mode: str = "r"):
    """A file object for `path` (builtin open locally, tf.io.gfile.GFile on object stores)."""
    if not is_remote(path):
        return open(path, mode)
    ensure_filesystem(path)
    return _gfile().GFile(path, mode)


def read_bytes(path: str) -> bytes:
    with open_file(path, "rb") as f:
        return f.read()


def append_text(path: str, text: str) -> None:
    """Append `text` to `path`. Object stores cannot append: the object is rewritten whole (small logs only)."""
    if not is_remote(path):
        with open(path, "a") as f:
            f.write(text)
        return
    old = read_bytes(path) if exists(path) else b""
    write_bytes_atomic(path, old + text.encode("utf-8"))


def upload_tree(local_dir: str, dest: str, last: tuple[str, ...] = ("saved_model.pb",)) -> str:
    """Copy the local folder `local_dir` to `dest` (an object-store prefix), the files named in `last` after every
    other file: a reader that waits for them (a model server waits for saved_model.pb) never sees half a tree."""
    ensure_filesystem(dest)
    gfile = _gfile()
    files: list[str] = []
    for folder, _, names in os.walk(local_dir):
        files += [os.path.relpath(os.path.join(folder, n), local_dir) for n in names]
    files.sort(key=lambda rel: (os.path.basename(rel) in last and os.path.dirname(rel) == "", rel))
    for rel in files:
        target = join(dest, rel.replace(os.sep, "/"))
        gfile.makedirs(target.rsplit("/", 1)[0])
        gfile.copy(os.path.join(local_dir, rel), target, overwrite=True)
    return dest


def download_tree(src: str, local_dir: str) -> str:
    """Copy every object under the object-store prefix `src` into the local folder `local_dir`."""
    ensure_filesystem(src)
    gfile = _gfile()
    for folder, _, names in gfile.walk(src):
        rel = folder[len(src.rstrip("/")):].strip("/")
        os.makedirs(os.path.join(local_dir, rel), exist_ok=True)
        for name in names:
            gfile.copy(join(folder, name), os.path.join(local_dir, rel, name), overwrite=True)
    return local_dir


def write_text_atomic(path: str, text: str) -> str:
    return write_bytes_atomic(path, text.encode("utf-8"))


def remove_tree(path: str) -> None:
    if is_remote(path):
        ensure_filesystem(path)
        if _gfile().isdir(path):
            _gfile().rmtree(path)
        elif _gfile().exists(path):
            _gfile().remove(path)
        return
    import shutil

    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def move_tree(src: str, dest: str) -> str:
    """Move the folder `src` to `dest` (which must not exist yet): a rename on a local disk; on an object store every
    object is copied, then `src` removed (a move interrupted half-way leaves `src` whole)."""
    if not is_remote(src) and not is_remote(dest):
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        os.rename(src, dest)
        return dest
    ensure_filesystems(src, dest)
    gfile = _gfile()
    for folder, _, names in gfile.walk(src):
        rel = folder[len(src.rstrip("/")):].strip("/")
        target = join(dest, rel) if rel else dest
        gfile.makedirs(target)
        for name in names:
            gfile.copy(join(folder, name), join(target, name), overwrite=True)
    remove_tree(src)
    return dest


def local_cache_path(url: str, cache_root: str = "") -> str:
    """A local path standing for a remote `url` (things that need a real file: SQLite MLMD, ...).
    Under $DCGAN_CACHE or ~/.cache/dcgan unless `cache_root` is given."""
    root = cache_root or os.environ.get("DCGAN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "dcgan")
    scheme, rest = str(url).split("://", 1)
    return os.path.join(root, scheme, *[p for p in rest.split("/") if p not in ("", ".", "..")])
