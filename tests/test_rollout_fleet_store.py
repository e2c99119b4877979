"""The config store of fleet rollouts (serving.config_store): read → (text, token), write(text, expected token), and
the rollout lease. S3 against the real S3 server on loopback (moto_server): it enforces `If-Match` / `If-None-Match`
on PutObject (HTTP 412), which the first test proves with plain boto3 calls. GCS against a fake bucket object that
mimics google-cloud-storage's generation checks: no GCS server or emulator runs here, so that path is tested without
one. Local files: the content hash and the flock."""

from __future__ import annotations

import datetime as dt
import functools
import itertools

import pytest

CONFIG = ('model_config_list { config { name: "dcgan" base_path: "s3://b/models/dcgan" '
          'model_platform: "tensorflow" } }\n')


def test_the_loopback_s3_server_enforces_conditional_puts(s3_env):
    """What the S3 store relies on, shown with plain boto3 (1.44.8) against moto_server (5.2.5): a stale If-Match
    and an If-None-Match on an existing key are refused with 412 PreconditionFailed; a matching If-Match wins."""
    import botocore.exceptions

    s3_env.create_bucket("cas-proof")
    client = s3_env.client()
    etag = client.put_object(Bucket="cas-proof", Key="models.config", Body=b"a", IfNoneMatch="*")["ETag"]
    with pytest.raises(botocore.exceptions.ClientError, match="PreconditionFailed"):
        client.put_object(Bucket="cas-proof", Key="models.config", Body=b"b", IfNoneMatch="*")
    with pytest.raises(botocore.exceptions.ClientError, match="PreconditionFailed"):
        client.put_object(Bucket="cas-proof", Key="models.config", Body=b"c", IfMatch='"0123456789abcdef"')
    assert client.get_object(Bucket="cas-proof", Key="models.config")["Body"].read() == b"a"
    client.put_object(Bucket="cas-proof", Key="models.config", Body=b"d", IfMatch=etag)
    assert client.get_object(Bucket="cas-proof", Key="models.config")["Body"].read() == b"d"


def test_s3_store_refuses_a_write_based_on_a_stale_etag_and_names_who_wrote_it(s3_env):
    from serving.config_store import StaleConfigError, open_store

    s3_env.create_bucket("cas-operators")
    url = "s3://cas-operators/fleet/models.config"
    alice, bob = open_store(url), open_store(url)
    first = alice.write(CONFIG, None, step="create")  # a new object: If-None-Match
    with pytest.raises(StaleConfigError, match="changed since this rollout read it"):
        bob.write(CONFIG, None, step="create")  # both thought it was new: the second create is refused
    seen_by_alice = alice.read()
    seen_by_bob = bob.read()
    assert seen_by_alice.token == seen_by_bob.token == first
    bobs = bob.write(CONFIG.replace("dcgan", "dcgan2"), seen_by_bob.token, step="promote")
    with pytest.raises(StaleConfigError, match=r"last written by .*@.* pid \d+: promote at 20\d\d-") as info:
        alice.write(CONFIG.replace("dcgan", "dcgan3"), seen_by_alice.token, step="canary 3")
    assert "nothing was overwritten" in str(info.value)
    assert "dcgan2" in bob.read().text  # bob's write is intact
    # A hand edit (aws s3 cp, the console): no writer recorded, said so.
    s3_env.client().put_object(Bucket="cas-operators", Key="fleet/models.config", Body=b"# edited by hand\n")
    with pytest.raises(StaleConfigError, match="not `dcgan rollout`"):
        bob.write(CONFIG, bobs, step="rollback")
    assert bob.read().text == "# edited by hand\n"


def test_s3_lease_lets_one_rollout_in_refuses_the_second_and_takes_over_an_expired_one(s3_env):
    from serving.config_store import ConfigBusyError, open_store

    s3_env.create_bucket("cas-lease")
    url = "s3://cas-lease/models.config"
    first, second = open_store(url), open_store(url)
    with first.lease("alice@a pid 1: canary 3", ttl_s=600):
        with pytest.raises(ConfigBusyError, match=r"another rollout .* in progress: alice@a pid 1: canary 3"):
            with second.lease("bob@b pid 2: promote", ttl_s=600):
                pass
    with second.lease("bob@b pid 2: promote", ttl_s=600):  # released: the next one gets it
        pass
    # A lease whose rollout died (older than its TTL, judged by the store's clock) is taken over.
    s3_env.client().put_object(Bucket="cas-lease", Key="models.config.lease",
                               Body=b'{"owner": "carol@c pid 3: canary 4", "ttl_s": 0}')
    with second.lease("bob@b pid 2: promote", ttl_s=600):
        with pytest.raises(ConfigBusyError, match="bob@b pid 2: promote"):
            with first.lease("alice@a pid 1: rollback", ttl_s=600):
                pass
    assert "Contents" not in s3_env.client().list_objects_v2(Bucket="cas-lease", Prefix="models.config.lease")


def test_s3_store_unreachable_and_missing_objects_are_clear_errors(s3_env, monkeypatch):
    from conftest import free_port

    from serving.config_store import ConfigStoreError, open_store
    from serving.rollout.labels import list_versions

    s3_env.create_bucket("cas-missing")
    with pytest.raises(ConfigStoreError, match=r"cannot read the model config s3://cas-missing/none.config: no such"):
        open_store("s3://cas-missing/none.config").read()
    with pytest.raises(ConfigStoreError, match="bucket 'no-such-bucket' does not exist"):
        open_store("s3://no-such-bucket/models.config").read()
    with pytest.raises(ConfigStoreError, match="expected s3://BUCKET/PATH/models.config"):
        open_store("s3://cas-missing")
    s3_env.client().put_object(Bucket="cas-missing", Key="models/dcgan/7/saved_model.pb", Body=b"x")
    s3_env.client().put_object(Bucket="cas-missing", Key="models/dcgan/tmp/saved_model.pb", Body=b"x")
    assert list_versions("s3://cas-missing/models/dcgan") == {7}
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ConfigStoreError, match=rf"S3 endpoint {dead} is unreachable.*keep their last good config"):
        open_store("s3://cas-missing/models.config").read()


def test_s3_config_reads_share_one_client_per_process_and_settings(s3_env, monkeypatch):
    """A replica polls its S3 config every few seconds: each read used to build a boto3 client (~0.2 s of CPU).
    Reads now share the process's client, and still read what was written last; other settings get another."""
    from serving import config_store
    from serving.model_server.config import read_text

    s3_env.create_bucket("cas-client")
    client = s3_env.client()
    built = []
    real = config_store._s3_client.__wrapped__
    config_store._s3_client.cache_clear()
    monkeypatch.setattr(config_store, "_s3_client",
                        functools.lru_cache(maxsize=8)(lambda *key: built.append(key) or real(*key)))
    for i in range(5):
        client.put_object(Bucket="cas-client", Key="models.config", Body=f"# version {i}\n".encode())
        assert read_text("s3://cas-client/models.config") == f"# version {i}\n"
    assert len(built) == 1
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    config_store.s3_client()
    assert len(built) == 2 and built[1][1] != built[0][1]  # the endpoint is part of the client's key


def test_local_store_compares_the_hash_and_names_the_file_owner(tmp_path):
    from serving.config_store import ConfigBusyError, StaleConfigError, open_store

    path = tmp_path / "models.config"
    path.write_text(CONFIG)
    store = open_store(str(path))
    snapshot = store.read()
    path.write_text(CONFIG + "# hand edit\n")
    with pytest.raises(StaleConfigError, match=r"last written by user \S+ at .* \(file modified time\)"):
        store.write("x", snapshot.token)
    assert path.read_text().endswith("# hand edit\n")
    token = store.write("y", store.read().token)
    assert store.read().token == token and path.read_text() == "y"
    with store.lease("a", 60):
        with pytest.raises(ConfigBusyError, match="another rollout"):
            with open_store(str(path)).lease("b", 60):
                pass


# -- GCS: a fake bucket (no GCS server or emulator runs here) ---------------------------------------------------------
class FakeBlob:
    """The part of google.cloud.storage.Blob the store uses, with GCS's generation preconditions."""

    def __init__(self, bucket: FakeBucket, name: str):
        self.bucket, self.name = bucket, name
        self.metadata: dict | None = None
        self.generation: int | None = None
        self.updated: dt.datetime | None = None

    def upload_from_string(self, data, content_type: str = "", if_generation_match: int | None = None) -> None:
        from google.api_core import exceptions as gex

        current = self.bucket.objects.get(self.name)
        if if_generation_match is not None and (current[0] if current else 0) != if_generation_match:
            raise gex.PreconditionFailed("conditionNotMet")
        data = data.encode() if isinstance(data, str) else data
        self.generation = next(self.bucket.generations)
        self.updated = self.bucket.now()
        self.bucket.objects[self.name] = (self.generation, data, dict(self.metadata or {}), self.updated)

    def download_as_bytes(self, if_generation_match: int | None = None) -> bytes:
        from google.api_core import exceptions as gex

        generation, data, _, _ = self.bucket.objects[self.name]
        if if_generation_match is not None and generation != if_generation_match:
            raise gex.PreconditionFailed("conditionNotMet")
        return data

    def delete(self, if_generation_match: int | None = None) -> None:
        from google.api_core import exceptions as gex

        if if_generation_match is not None and self.bucket.objects[self.name][0] != if_generation_match:
            raise gex.PreconditionFailed("conditionNotMet")
        del self.bucket.objects[self.name]


class FakeBucket:
    def __init__(self):
        self.objects: dict[str, tuple[int, bytes, dict, dt.datetime]] = {}
        self.generations = itertools.count(1_700_000_000_000_001)
        # GCS stamps objects with its own (real) time; the lease's age is judged against it
        self.clock = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def now(self) -> dt.datetime:
        return self.clock

    def blob(self, name: str) -> FakeBlob:
        return FakeBlob(self, name)

    def get_blob(self, name: str) -> FakeBlob | None:
        if name not in self.objects:
            return None
        blob = FakeBlob(self, name)
        blob.generation, _, blob.metadata, blob.updated = self.objects[name]
        return blob


def test_gcs_store_uses_generation_preconditions_against_a_fake_bucket():
    """google-cloud-storage's `if_generation_match` path, against a fake bucket (no GCS server here)."""
    from serving.config_store import ConfigBusyError, GCSConfigStore, StaleConfigError

    bucket = FakeBucket()
    url = "gs://fleet/models.config"
    alice, bob = GCSConfigStore(url, bucket=bucket), GCSConfigStore(url, bucket=bucket)
    first = alice.write(CONFIG, None, step="create")
    with pytest.raises(StaleConfigError):
        bob.write(CONFIG, None)  # if_generation_match=0: the object exists already
    seen = alice.read()
    assert seen.token == first and seen.text == CONFIG
    bob.write("bob's", bob.read().token, step="promote")
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    with pytest.raises(StaleConfigError, match=rf"last written by .* pid \d+: promote at {stamp}"):
        alice.write("alice's", seen.token)
    assert bob.read().text == "bob's"
    with alice.lease("alice@a pid 1: canary 3", ttl_s=600):
        with pytest.raises(ConfigBusyError, match="alice@a pid 1: canary 3"):
            with bob.lease("bob@b pid 2: promote", ttl_s=600):
                pass
    assert "models.config.lease" not in bucket.objects
