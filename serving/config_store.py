"""Where a fleet's model config file lives, read and written with a compare-and-swap, and who holds the rollout.

One interface for the three places a `models.config` can be (`open_store(url)`):

- a local file (a shared volume): the token is the SHA-256 of its bytes; a write compares it under an exclusive
  `flock` on `.<name>.lock` beside the file, then replaces the file atomically (temp file + rename);
- `s3://bucket/key` (AWS S3, MinIO, any S3 API; endpoint from the standard `AWS_ENDPOINT_URL`): the token is the
  object's ETag; a write is a conditional PUT, `If-Match: <etag>` for an object that exists, `If-None-Match: *` for a
  new one, so the store itself refuses a write based on a stale read (HTTP 412);
- `gs://bucket/object`: the token is the object's generation; a write is an upload with `if_generation_match`
  (0 for a new object), the same guard in GCS's words.

`read()` → `Snapshot(text, token)`; `write(text, expected_token)` → the new token, or `StaleConfigError` naming who
wrote the file last (every write records its writer: object metadata on the stores, the file's owner and time
locally). Each write is a whole-object replace, so a replica polling the file never reads half of it.

`lease(owner, ttl_s)` makes a rollout exclusive across machines: locally the `flock` above (one machine); on an object
store a lease object `<key>.lease` created with `If-None-Match: *` / `if_generation_match=0`, so of two rollouts
started at once exactly one gets it and the other is refused (`ConfigBusyError`, naming the holder); it is deleted
(conditionally) when the rollout ends and taken over only when older than its TTL (a crashed operator), judged on
the store's clock. The conditional config write stays the guard against anything that does not take the lease
(a hand edit).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import getpass
import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

WRITER_KEY = "dcgan-writer"  # object metadata: who wrote the config (user@host pid N: step)


class ConfigStoreError(Exception):
    """The config store cannot be used (unreachable, no such bucket, no permission); nothing was written."""


class ConfigNotFoundError(ConfigStoreError, FileNotFoundError):
    """The config object does not exist."""


class StaleConfigError(ConfigStoreError):
    """The config changed since it was read: the write was refused by the store, nothing was overwritten."""


class ConfigBusyError(ConfigStoreError):
    """Another rollout holds the lease (or lock) of this config."""


@dataclass(frozen=True)
class Snapshot:
    text: str
    token: str | None  # ETag / generation / sha256; None: the file does not exist


def operator(step: str = "") -> str:
    """`user@host pid N` (+ `: step`): what a write or a lease records as its author."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = str(os.getuid())
    who = f"{user}@{socket.gethostname()} pid {os.getpid()}"
    return f"{who}: {step}" if step else who


def open_store(url: str) -> ConfigStore:
    """The store for a config URL: `s3://…`, `gs://…` or a local path."""
    if url.startswith("s3://"):
        return S3ConfigStore(url)
    if url.startswith("gs://"):
        return GCSConfigStore(url)
    if "://" in url:
        raise ConfigStoreError(f"{url}: unsupported config location (use a local path, s3:// or gs://)")
    return LocalConfigStore(url)


def _split_url(url: str, scheme: str) -> tuple[str, str]:
    bucket, _, key = url[len(scheme):].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise ConfigStoreError(f"{url}: expected {scheme}BUCKET/PATH/models.config")
    return bucket, key


class ConfigStore:
    """Base: `url`, `read`, `write`, `lease`, `describe_writer` (see the module docstring)."""

    url: str
    unreachable_hint = "nothing was written, the replicas keep their last good config"

    def read(self) -> Snapshot:
        raise NotImplementedError

    def write(self, text: str, expected: str | None, step: str = "") -> str:
        raise NotImplementedError

    @contextlib.contextmanager
    def lease(self, owner: str, ttl_s: float) -> Iterator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _stale(self, expected: str | None, now: str) -> StaleConfigError:
        return StaleConfigError(
            f"{self.url} changed since this rollout read it (another operator or a hand edit): it was last written "
            f"by {now}; the store refused the write (expected version {expected or 'no file'}), nothing was "
            "overwritten; run the step again")


# -- local file -------------------------------------------------------------------------------------------------------
class LocalConfigStore(ConfigStore):
    def __init__(self, path: str):
        self.url = self.path = os.path.abspath(path)

    def read(self) -> Snapshot:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ConfigStoreError(f"cannot read the model config {self.path} (No such file or directory); "
                                   f"{self.unreachable_hint}") from None
        except OSError as e:
            raise ConfigStoreError(f"cannot read the model config {self.path} ({e.strerror}); "
                                   f"{self.unreachable_hint}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigStoreError(f"{self.path} is not UTF-8 text ({e})") from None
        return Snapshot(text, hashlib.sha256(data).hexdigest())

    def _token(self) -> str | None:
        try:
            with open(self.path, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        except FileNotFoundError:
            return None

    def write(self, text: str, expected: str | None, step: str = "") -> str:
        """Compare the file's hash with `expected`, then replace it atomically. Called under `lease` (the flock), so
        two rollouts never interleave here; a hand edit is caught by the hash."""
        if self._token() != expected:
            raise self._stale(expected, self.describe_writer())
        data = text.encode("utf-8")
        folder = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.path)}.", suffix=".tmp", dir=folder)
        try:  # temp file in the same folder, fsync, keep the mode, rename: a poller never reads half of it
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, os.stat(self.path).st_mode & 0o777 if os.path.exists(self.path) else 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return hashlib.sha256(data).hexdigest()

    def describe_writer(self) -> str:
        try:
            st = os.stat(self.path)
        except OSError:
            return "someone who deleted it"
        try:
            import pwd

            user = pwd.getpwuid(st.st_uid).pw_name
        except (ImportError, KeyError):
            user = str(st.st_uid)
        when = dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"user {user} at {when} (file modified time)"

    @contextlib.contextmanager
    def lease(self, owner: str, ttl_s: float) -> Iterator[None]:
        """An exclusive flock on `.<name>.lock` beside the file (one machine; released by the OS if we die)."""
        folder, name = os.path.split(self.path)
        try:
            lock_file = open(os.path.join(folder, f".{name}.lock"), "a")  # noqa: SIM115 - closed by the with below
        except OSError as e:
            raise ConfigStoreError(f"cannot read the model config {self.path}: its folder is unreachable "
                                   f"({e.strerror}); {self.unreachable_hint}") from None
        with lock_file as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigBusyError(f"another rollout of {self.path} is in progress (lock {lock.name}); try "
                                      "again when it has finished") from None
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


# -- S3 ---------------------------------------------------------------------------------------------------------------
class S3ConfigStore(ConfigStore):
    def __init__(self, url: str, client=None):
        self.url = url
        self.bucket, self.key = _split_url(url, "s3://")
        self.lease_key = self.key + ".lease"
        self._client = client

    @property
    def endpoint(self) -> str:
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"

    @property
    def client(self):
        if self._client is None:
            self._client = s3_client()
        return self._client

    def _error(self, e: Exception, doing: str) -> ConfigStoreError:
        import botocore.exceptions as bex

        if isinstance(e, bex.ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchBucket",):
                return ConfigStoreError(f"cannot {doing} {self.url}: bucket {self.bucket!r} does not exist at "
                                        f"{self.endpoint}; {self.unreachable_hint}")
            return ConfigStoreError(f"cannot {doing} {self.url}: S3 error {code} at {self.endpoint} "
                                    f"({e.response.get('Error', {}).get('Message', '')}); {self.unreachable_hint}")
        if isinstance(e, bex.NoCredentialsError):
            return ConfigStoreError(f"cannot {doing} {self.url}: no S3 credentials (set AWS_ACCESS_KEY_ID and "
                                    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
        return ConfigStoreError(f"cannot {doing} {self.url}: the S3 endpoint {self.endpoint} is unreachable "
                                f"({e}); {self.unreachable_hint}")

    @staticmethod
    def _code(e: Exception) -> str:
        import botocore.exceptions as bex

        return str(e.response.get("Error", {}).get("Code", "")) if isinstance(e, bex.ClientError) else ""

    def read(self) -> Snapshot:
        import botocore.exceptions as bex

        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self.key)
            data = got["Body"].read()
        except bex.ClientError as e:
            if self._code(e) in ("NoSuchKey", "404"):
                raise ConfigNotFoundError(f"cannot read the model config {self.url}: no such object at "
                                       f"{self.endpoint}; {self.unreachable_hint}") from None
            raise self._error(e, "read the model config") from None
        except (bex.BotoCoreError, OSError) as e:
            raise self._error(e, "read the model config") from None
        try:
            return Snapshot(data.decode("utf-8"), got["ETag"])
        except UnicodeDecodeError as e:
            raise ConfigStoreError(f"{self.url} is not UTF-8 text ({e})") from None

    def describe_writer(self) -> str:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except Exception:  # noqa: BLE001 - only for the message
            return "someone who deleted it"
        writer = head.get("Metadata", {}).get(WRITER_KEY)
        when = head["LastModified"].strftime("%Y-%m-%d %H:%M:%S UTC")
        return (f"{writer} at {when}" if writer else
                f"a writer that is not `dcgan rollout` (no {WRITER_KEY} metadata: a hand edit or another tool) at "
                f"{when}")

    def write(self, text: str, expected: str | None, step: str = "") -> str:
        import botocore.exceptions as bex

        condition = {"IfMatch": expected} if expected else {"IfNoneMatch": "*"}
        try:
            put = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=text.encode("utf-8"),
                                         ContentType="text/plain; charset=utf-8",
                                         Metadata={WRITER_KEY: operator(step)}, **condition)
        except bex.ClientError as e:
            # 412: the ETag no longer matches (If-Match) or the object now exists (If-None-Match); 409: a concurrent
            # conditional write won the race; 404 NoSuchKey: If-Match on an object deleted meanwhile.
            if self._code(e) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey"):
                raise self._stale(expected, self.describe_writer()) from None
            raise self._error(e, "write the model config") from None
        except (bex.BotoCoreError, OSError) as e:
            raise self._error(e, "write the model config") from None
        return put["ETag"]

    # The lease: <key>.lease, JSON {owner, ttl_s}; age judged by the store's clock (Date header - LastModified).
    def _lease_age_s(self, head: dict) -> float:
        date = head.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        now = parsedate_to_datetime(date) if date else dt.datetime.now(dt.timezone.utc)
        return (now - head["LastModified"]).total_seconds()

    @contextlib.contextmanager
    def lease(self, owner: str, ttl_s: float) -> Iterator[None]:
        import botocore.exceptions as bex

        body = json.dumps({"owner": owner, "ttl_s": ttl_s}).encode()
        lease_url = f"s3://{self.bucket}/{self.lease_key}"
        try:
            try:
                etag = self.client.put_object(Bucket=self.bucket, Key=self.lease_key, Body=body,
                                              IfNoneMatch="*")["ETag"]
            except bex.ClientError as e:
                if self._code(e) not in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                    raise
                etag = self._take_over_expired(lease_url, body)
        except ConfigStoreError:
            raise
        except (bex.ClientError, bex.BotoCoreError, OSError) as e:
            raise self._error(e, "take the rollout lease of") from None
        try:
            yield
        finally:
            with contextlib.suppress(bex.ClientError, bex.BotoCoreError, OSError):
                self.client.delete_object(Bucket=self.bucket, Key=self.lease_key, IfMatch=etag)

    def _take_over_expired(self, lease_url: str, body: bytes) -> str:
        import botocore.exceptions as bex

        got = self.client.get_object(Bucket=self.bucket, Key=self.lease_key)
        try:
            held = json.loads(got["Body"].read())
            holder, ttl = str(held["owner"]), float(held["ttl_s"])
        except (ValueError, KeyError, TypeError):
            holder, ttl = "an unreadable lease", 0.0
        age = self._lease_age_s(got)
        if age < ttl:
            raise ConfigBusyError(f"another rollout of {self.url} is in progress: {holder}, since {age:.0f} s "
                                  f"(lease {lease_url}, expires after {ttl:.0f} s); try again when it has finished")
        try:  # expired (its rollout died): take it over, conditionally, so two late-comers cannot both win
            return self.client.put_object(Bucket=self.bucket, Key=self.lease_key, Body=body,
                                          IfMatch=got["ETag"])["ETag"]
        except bex.ClientError as e:
            if self._code(e) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey"):
                raise ConfigBusyError(f"another rollout of {self.url} took the expired lease {lease_url} first; "
                                      "try again when it has finished") from None
            raise


# -- GCS --------------------------------------------------------------------------------------------------------------
class GCSConfigStore(ConfigStore):
    """google-cloud-storage: generation numbers and `if_generation_match` (the client honours STORAGE_EMULATOR_HOST;
    `bucket` may be given, e.g. a fake in tests: no GCS server or emulator runs here)."""

    def __init__(self, url: str, bucket=None):
        self.url = url
        self.bucket_name, self.key = _split_url(url, "gs://")
        self.lease_key = self.key + ".lease"
        self._bucket = bucket

    @property
    def bucket(self):
        if self._bucket is None:
            from google.cloud import storage

            self._bucket = storage.Client().bucket(self.bucket_name)
        return self._bucket

    def _error(self, e: Exception, doing: str) -> ConfigStoreError:
        return ConfigStoreError(f"cannot {doing} {self.url}: {type(e).__name__}: {e}; {self.unreachable_hint}")

    def read(self) -> Snapshot:
        from google.api_core import exceptions as gex

        try:
            blob = self.bucket.get_blob(self.key)
            if blob is None:
                raise ConfigStoreError(f"cannot read the model config {self.url}: no such object; "
                                       f"{self.unreachable_hint}")
            data = blob.download_as_bytes(if_generation_match=blob.generation)
        except ConfigStoreError:
            raise
        except gex.PreconditionFailed:
            return self.read()  # rewritten between the two calls: read the new generation
        except Exception as e:  # noqa: BLE001 - google-auth / transport errors have no common base
            raise self._error(e, "read the model config") from None
        return Snapshot(data.decode("utf-8"), str(blob.generation))

    def describe_writer(self) -> str:
        try:
            blob = self.bucket.get_blob(self.key)
        except Exception:  # noqa: BLE001 - only for the message
            blob = None
        if blob is None:
            return "someone who deleted it"
        writer = (blob.metadata or {}).get(WRITER_KEY)
        when = blob.updated.strftime("%Y-%m-%d %H:%M:%S UTC") if blob.updated else "an unknown time"
        return (f"{writer} at {when} (generation {blob.generation})" if writer else
                f"a writer that is not `dcgan rollout` (no {WRITER_KEY} metadata) at {when} "
                f"(generation {blob.generation})")

    def write(self, text: str, expected: str | None, step: str = "") -> str:
        from google.api_core import exceptions as gex

        blob = self.bucket.blob(self.key)
        blob.metadata = {WRITER_KEY: operator(step)}
        try:
            blob.upload_from_string(text.encode("utf-8"), content_type="text/plain; charset=utf-8",
                                    if_generation_match=int(expected) if expected else 0)
        except gex.PreconditionFailed:
            raise self._stale(expected, self.describe_writer()) from None
        except Exception as e:  # noqa: BLE001
            raise self._error(e, "write the model config") from None
        return str(blob.generation)

    @contextlib.contextmanager
    def lease(self, owner: str, ttl_s: float) -> Iterator[None]:
        from google.api_core import exceptions as gex

        lease_url = f"gs://{self.bucket_name}/{self.lease_key}"
        body = json.dumps({"owner": owner, "ttl_s": ttl_s})
        blob = self.bucket.blob(self.lease_key)
        try:
            blob.upload_from_string(body, if_generation_match=0)
        except gex.PreconditionFailed:
            held = self.bucket.get_blob(self.lease_key)
            info = json.loads(held.download_as_bytes()) if held is not None else {}
            age = time.time() - held.updated.timestamp() if held is not None and held.updated else float("inf")
            if age < float(info.get("ttl_s", 0)):
                raise ConfigBusyError(f"another rollout of {self.url} is in progress: {info.get('owner')}, since "
                                      f"{age:.0f} s (lease {lease_url}); try again when it has finished") from None
            try:
                blob.upload_from_string(body, if_generation_match=held.generation if held is not None else 0)
            except gex.PreconditionFailed:
                raise ConfigBusyError(f"another rollout of {self.url} took the expired lease {lease_url} first; "
                                      "try again when it has finished") from None
        except Exception as e:  # noqa: BLE001
            raise self._error(e, "take the rollout lease of") from None
        generation = blob.generation
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self.bucket.blob(self.lease_key).delete(if_generation_match=generation)


# What boto3 reads from the environment to build an S3 client: a change of any of them gets a new client.
S3_SETTINGS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SHARED_CREDENTIALS_FILE",
               "AWS_CONFIG_FILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE")


def s3_client():
    """boto3's S3 client on the standard settings (AWS_ENDPOINT_URL[_S3], credentials chain), short timeouts.

    One per process and settings: building a client costs ~0.2 s of CPU (botocore loads its endpoint and service
    models), which every poll of a replica's S3 config and every read of a rollout paid (a replica polling each
    second spent a fifth of a core on it). boto3 clients are thread-safe and refresh expiring credentials
    themselves; a forked child builds its own (the pid is part of the key)."""
    return _s3_client(os.getpid(), tuple(os.environ.get(name) for name in S3_SETTINGS))


@functools.lru_cache(maxsize=8)
def _s3_client(pid: int, settings: tuple[str | None, ...]):
    import boto3
    from botocore.config import Config

    env = dict(zip(S3_SETTINGS, settings))
    endpoint = env["AWS_ENDPOINT_URL_S3"] or env["AWS_ENDPOINT_URL"] or None
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=Config(connect_timeout=5,
                                                                                     read_timeout=20))
