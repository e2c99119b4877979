"""Ingest and path handling on object stores, against a real S3 server on loopback (moto), plus the bad inputs: an
unreachable endpoint, missing credentials, a missing bucket (clear errors, bounded time), files and zip members over
the size cap, symlink cycles. gs:// has no emulator TensorFlow's built-in GCS filesystem would talk to, so only its
path handling is tested (no server)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import free_port
from PIL import Image

from components.ingest import sources
from dcgan import fileio
from dcgan import images as imlib

DCGAN = os.path.join(os.path.dirname(sys.executable), "dcgan")


def _png(seed: int, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _upload_images(s3, bucket: str, prefix: str, count: int) -> None:
    for i in range(count):
        s3.put_object(Bucket=bucket, Key=f"{prefix}/sub{i % 2}/{i:03d}.png", Body=_png(i))
    s3.put_object(Bucket=bucket, Key=f"{prefix}/notes.txt", Body=b"not an image")


@pytest.mark.slow
def test_dcgan_ingest_reads_an_s3_folder_and_writes_to_s3(s3_env, tmp_path):
    bucket = s3_env.create_bucket("ingest-s3")
    s3 = s3_env.client()
    _upload_images(s3, "ingest-s3", "images", 12)
    proc = subprocess.run([DCGAN, "ingest", f"{bucket}/images", f"{bucket}/out", "--size", "32"],
                          env={**os.environ, **s3_env.environment}, cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="ingest-s3", Prefix="out/")["Contents"]]
    assert any("/Split-train/" in k for k in keys) and any("/Split-eval/" in k for k in keys)
    assert os.listdir(tmp_path) == []  # nothing landed in a local folder named like the URL
    # what was written trains: read back through the same resolver the trainer uses
    from dcgan.data import resolve_data

    resolved = resolve_data(f"{bucket}/out")
    assert resolved.kind == "tfrecord" and all(f.startswith(f"{bucket}/out/Split-train/") for f in resolved.files)


def test_s3_folder_and_glob_sources_list_like_local_ones(s3_env):
    bucket = s3_env.create_bucket("ingest-list")
    _upload_images(s3_env.client(), "ingest-list", "photos", 4)
    folder = sources.parse_source(f"{bucket}/photos")
    assert folder.kind == "folder" and folder.ignored == ("notes.txt",)
    assert [i.id for i in folder.items()] == ["sub0/000.png", "sub0/002.png", "sub1/001.png", "sub1/003.png"]
    assert sources.read_item(folder.items()[0]) == _png(0)
    glob = sources.parse_source(f"{bucket}/photos/sub1/*.png")
    assert [i.id for i in glob.items()] == ["001.png", "003.png"]
    assert folder.fingerprint() == sources.parse_source(f"{bucket}/photos").fingerprint()


def test_missing_bucket_is_a_clear_error(s3_env):
    with pytest.raises(sources.SourceError, match="bucket 'no-such-bucket' does not exist"):
        sources.parse_source("s3://no-such-bucket/images")


def test_unreachable_endpoint_names_the_url_and_aws_endpoint_url(monkeypatch):
    port = free_port()  # a loopback port nobody listens on
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with pytest.raises(fileio.ObjectStoreError) as e:
        fileio.check_s3_reachable("s3://bucket/data", timeout_s=1)
    assert "s3://bucket/data" in str(e.value) and "AWS_ENDPOINT_URL" in str(e.value)


def test_missing_credentials_is_a_clear_error(s3_server, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(fileio.ObjectStoreError, match="no S3 credentials.*AWS_ACCESS_KEY_ID"):
        fileio.check_s3_reachable("s3://bucket/data")


def test_oversized_files_and_zip_members_are_rejected_before_being_read(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_FILE_BYTES", 4096)
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 10_000)
    with pytest.raises(imlib.ImageRejected) as e:
        sources.read_item(sources.WorkItem("big.png", "file", str(big)))
    assert e.value.reason == sources.TOO_BIG
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("bomb.png", b"\0" * 1_000_000)  # ~1 KB compressed, 1 MB inflated
        zf.writestr("ok.png", _png(1, 8))
    with pytest.raises(imlib.ImageRejected) as e:
        sources.read_item(sources.WorkItem("bomb.png", "zip", str(archive), member="bomb.png"))
    assert e.value.reason == sources.TOO_BIG
    assert sources.read_item(sources.WorkItem("ok.png", "zip", str(archive), member="ok.png")) == _png(1, 8)


def test_a_symlink_cycle_is_not_followed_round(tmp_path):
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "a" / "1.png").write_bytes(_png(1, 8))
    os.symlink(root, root / "a" / "loop")  # photos/a/loop -> photos
    found, _ = imlib.list_image_files(str(root))
    assert [rel for rel, _ in found] == ["a/1.png"]


def test_gcs_paths_are_handled_without_a_server():
    # No GCS emulator can be used: TensorFlow's built-in GCS filesystem honours no emulator endpoint. Path handling
    # (joining, recognising, the local MLMD cache path) needs no server.
    assert fileio.is_remote("gs://b/x")
    assert fileio.join("gs://b/runs/", "/artifacts", "x") == "gs://b/runs/artifacts/x"
    assert fileio.local_cache_path("gs://b/runs/../smoke", "/c") == "/c/gs/b/runs/smoke"
    from pipeline.config import PipelineConfig

    config = PipelineConfig(root="gs://bucket/runs/smoke")
    assert config.pipeline_root == "gs://bucket/runs/smoke/artifacts"
    assert config.push_base == "gs://bucket/runs/smoke/serving/dcgan"
    assert not config.metadata_path.startswith("gs://")
