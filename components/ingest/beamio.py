"""How the ingest reaches files through Apache Beam's filesystems (local, `s3://`, `gs://`): the S3 options derived
from the standard AWS variables, and opening, matching and sizing paths inside Beam workers.

The S3 endpoint is named once, by `AWS_ENDPOINT_URL` (`dcgan.fileio` derives tensorflow-io's variables from it; here
the same derivation becomes Beam's `S3Options`). Credentials are not copied into pipeline options (Beam logs and
ships its options with the job): each worker's boto3 finds them the standard way (AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY, a profile, an instance or pod role).
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping, Sequence
from typing import BinaryIO

from dcgan import fileio

# Beam's S3 reader buffers 16 MB per read by default: one ranged GET of 16 MB for every few-KB zip member or photo.
READ_BUFFER_BYTES = 256 << 10

_TFIO_KEYS = ("S3_ENDPOINT", "S3_USE_HTTPS", "S3_VERIFY_SSL", "AWS_REGION")

# One Beam S3IO (one boto3 client) per process and S3 settings. Beam's S3FileSystem builds a new S3IO, and so a new
# boto3 client (~0.2 s: botocore loads its endpoint and service models each time), for every open and every size:
# an ingest from s3:// ran at ~5 photos/s on a 2-core machine, all of it in client construction (py-spy). boto3
# clients are thread-safe; each `open` makes its own downloader.
_s3io: dict[str, object] = {}
_s3io_lock = threading.Lock()


def s3_pipeline_args(environ: Mapping[str, str] | None = None) -> list[str]:
    """Beam `S3Options` flags (`--s3_endpoint_url`, `--s3_region_name`) for the S3 endpoint the environment names.

    The derivation is `dcgan.fileio.s3_environment` (AWS_ENDPOINT_URL[_S3], AWS_REGION / AWS_DEFAULT_REGION; values
    of tensorflow-io's S3_* variables already set win), so Beam and tensorflow-io always talk to the same server.
    `--s3_verify` is left alone: Beam passes it to boto3 as a string, where anything but a CA bundle path is wrong;
    boto3 reads AWS_CA_BUNDLE itself."""
    env = dict(os.environ if environ is None else environ)
    resolved = {k: env[k] for k in _TFIO_KEYS if env.get(k)}
    resolved.update(fileio.s3_environment(env))
    args = []
    endpoint = resolved.get("S3_ENDPOINT", "")
    if endpoint:
        if "://" not in endpoint:  # tensorflow-io accepts host:port and takes the scheme from S3_USE_HTTPS
            endpoint = ("http://" if resolved.get("S3_USE_HTTPS") == "0" else "https://") + endpoint
        args.append(f"--s3_endpoint_url={endpoint}")
    if resolved.get("AWS_REGION"):
        args.append(f"--s3_region_name={resolved['AWS_REGION']}")
    return args


def pipeline_args(beam_pipeline_args: Sequence[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> list[str]:
    """The ingest's Beam arguments: the user's, plus the derived S3 options the user did not give."""
    args = list(beam_pipeline_args or [])
    given = {a.split("=", 1)[0] for a in args}
    return args + [a for a in s3_pipeline_args(environ) if a.split("=", 1)[0] not in given]


def ensure_options(args: Sequence[str]) -> None:
    """Give Beam's FileSystems the S3 options in a process that has none yet. The DirectRunner's worker processes
    get the pipeline's options; a Dask worker gets none, and Beam's S3 filesystem then fails on `None.get`."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    if getattr(FileSystems, "_pipeline_options", None) is None:
        FileSystems.set_options(PipelineOptions(list(args)))


def _s3io_for(path: str):
    """The process's S3IO for the S3 settings Beam's FileSystems resolve for `path`; None when `path` is not on S3."""
    from apache_beam.io.aws.s3filesystem import S3FileSystem
    from apache_beam.io.filesystems import FileSystems

    filesystem = FileSystems.get_filesystem(path)
    if not isinstance(filesystem, S3FileSystem):
        return None
    from apache_beam.io.aws import s3io
    from apache_beam.options.pipeline_options import S3Options

    key = repr(sorted(filesystem._options.view_as(S3Options).get_all_options(drop_default=True).items()))
    with _s3io_lock:
        if key not in _s3io:
            _s3io[key] = s3io.S3IO(options=filesystem._options)
        return _s3io[key]


def open_binary(path: str) -> BinaryIO:
    """A seekable binary reader of `path` (local or object store) through Beam's FileSystems, with a small read
    buffer on object stores."""
    if not fileio.is_remote(path):
        return open(path, "rb")
    s3 = _s3io_for(path)
    if s3 is not None:
        return s3.open(path, "rb", read_buffer_size=READ_BUFFER_BYTES)
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    stream = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    if isinstance(stream, io.BufferedReader):
        stream = io.BufferedReader(stream.detach(), buffer_size=READ_BUFFER_BYTES)
    return stream


def size_of(path: str) -> int:
    """Bytes in `path` (OSError when it cannot be found or read)."""
    if not fileio.is_remote(path):
        return os.stat(path).st_size
    from apache_beam.io.filesystems import FileSystems

    try:
        s3 = _s3io_for(path)
        return s3.size(path) if s3 is not None else FileSystems.metadata(path).size_in_bytes
    except Exception as e:  # noqa: BLE001 - Beam raises BeamIOError with the cause inside
        raise OSError(f"{path}: {e}") from e


def match(pattern: str, limit: int | None = None) -> list[tuple[str, int]]:
    """(path, bytes) of the objects matching a Beam glob (`*` within a folder, `**` across folders); folder marker
    objects (names ending in '/') are left out. `limit` stops the listing early."""
    from apache_beam.io.filesystems import FileSystems

    (result,) = FileSystems.match([pattern], limits=[limit])
    return [(m.path, m.size_in_bytes) for m in result.metadata_list if not m.path.endswith("/")]


def worker_args(options) -> list[str]:
    """The S3 settings of the pipeline's `options` as flags, for DoFns to hand to `ensure_options` in workers that
    got no options (Dask)."""
    from apache_beam.options.pipeline_options import S3Options

    s3 = options.view_as(S3Options).get_all_options(drop_default=True)
    args = []
    for name, value in sorted(s3.items()):
        if not name.startswith("s3_") or value in (None, False):
            continue
        args.append(f"--{name}" if value is True else f"--{name}={value}")
    return args
