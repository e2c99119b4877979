"""Ingest that scales: the job graph holds the source, not its items (the listing runs inside the pipeline), zips
are listed from their central directory by a worker (on S3 too), oversized members are still reported as bad
files, and Beam's S3 options come from the standard AWS variables. Real DirectRunner, real S3 server on loopback."""

from __future__ import annotations

import io
import os
import zipfile

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from components.ingest import beamio, sources
from components.ingest.config import IngestConfig
from components.ingest.pipeline import build_ingest_pipeline, plan_ingest, run_ingest
from dcgan import schema


def _png(seed: int, size: int = 24) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _graph_bytes(source: str, out: str) -> int:
    pipeline = beam.Pipeline(options=PipelineOptions([]))
    build_ingest_pipeline(pipeline, plan_ingest(IngestConfig(source=source, size=16)), out, out)
    return len(pipeline.to_runner_api().SerializeToString())


def test_job_graph_does_not_grow_with_the_number_of_input_files(tmp_path):
    sizes = {}
    for n in (10, 1000):
        folder = tmp_path / f"n{n:04d}"  # same-length names: the source path is in the graph, once
        folder.mkdir()
        for i in range(n):
            (folder / f"{i:05d}.png").write_bytes(b"x")  # never read: only the graph is built
        sizes[n] = _graph_bytes(str(folder), str(tmp_path / "out"))
    assert abs(sizes[1000] - sizes[10]) <= 64, f"job graph of {sizes[10]} bytes for 10 files, {sizes[1000]} for 1000"


CELEBA_ATTRIBUTES = "3\nSmiling Young\n000001.png  1 -1\n000002.png -1  1\n000003.png  1  1\n"


def _zip_with_a_bomb() -> bytes:
    """Five good members (CelebA layout, labels inside), a member inflating past the 64 MB cap (~64 KB deflated),
    a README (ignored) and a hidden macOS folder (skipped)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(1, 6):
            zf.writestr(f"img_align_celeba/{i:06d}.png", _png(i))
        zf.writestr("img_align_celeba/bomb.png", b"\0" * (sources.MAX_FILE_BYTES + 1))
        zf.writestr("list_attr_celeba.txt", CELEBA_ATTRIBUTES)
        zf.writestr("README.txt", "not an image")
        zf.writestr("__MACOSX/img_align_celeba/._000001.png", b"x")
    return buf.getvalue()


def _written(examples: str) -> dict[str, dict]:
    import tensorflow as tf

    out = {}
    for split in schema.SPLITS:
        files = sorted(tf.io.gfile.glob(schema.split_pattern(examples, split)))
        out.update({r[schema.ID_KEY]: {**r, "split": split} for r in schema.read_examples(files)})
    return out


def _check_zip_report(report) -> None:
    assert report.input_count == 6 and report.written_total == 5
    assert [(r.id, r.reason) for r in report.rejects] == [("img_align_celeba/bomb.png", sources.TOO_BIG)]
    assert report.ignored == ["README.txt"]
    assert report.attribute_names == ["Smiling", "Young"]


def test_a_zip_on_s3_is_listed_in_the_pipeline_and_ingested_to_s3(s3_env, tmp_path):
    bucket = s3_env.create_bucket("ingest-zip")
    data = _zip_with_a_bomb()
    s3_env.client().put_object(Bucket="ingest-zip", Key="data/celeba.zip", Body=data)
    config = IngestConfig(source=f"{bucket}/data/celeba.zip", size=16, eval_ratio=0.4)
    report = run_ingest(config, f"{bucket}/out")
    _check_zip_report(report)
    on_s3 = _written(f"{bucket}/out")
    assert sorted(on_s3) == [f"img_align_celeba/{i:06d}.png" for i in range(1, 6)]
    assert on_s3["img_align_celeba/000002.png"]["attributes"] == {"Smiling": "0", "Young": "1"}, \
        "labels from list_attr_celeba.txt inside the zip on S3"
    # the same zip on local disk gives the same records in the same splits
    local_zip = tmp_path / "celeba.zip"
    local_zip.write_bytes(data)
    local_report = run_ingest(IngestConfig(**{**config.to_dict(), "source": str(local_zip)}), str(tmp_path / "out"))
    _check_zip_report(local_report)
    local = _written(str(tmp_path / "out"))
    assert {k: (r["sha256"], r["split"]) for k, r in local.items()} == \
        {k: (r["sha256"], r["split"]) for k, r in on_s3.items()}


def test_a_worker_without_pipeline_options_lists_s3_through_the_derived_options(s3_env, monkeypatch):
    """What a Dask worker sees: Beam's FileSystems has no options there until the DoFn's setup gives them."""
    from apache_beam.io.filesystems import FileSystems

    from components.ingest.pipeline import BATCH, LISTED, ListSource

    bucket = s3_env.create_bucket("ingest-noopts")
    for i in range(3):
        s3_env.client().put_object(Bucket="ingest-noopts", Key=f"photos/{i}.png", Body=_png(i))
    source = sources.parse_source(f"{bucket}/photos")
    monkeypatch.setattr(FileSystems, "_pipeline_options", None)
    lister = ListSource(2, beamio.worker_args(PipelineOptions(beamio.pipeline_args([]))))
    lister.setup()
    out = list(lister.process(source))
    assert [len(v) for k, v in out if k == BATCH] == [2, 1] and (LISTED, 3) in out
    assert FileSystems._pipeline_options is not None


def test_s3_options_are_derived_from_the_standard_aws_variables():
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "id",
           "AWS_SECRET_ACCESS_KEY": "secret"}
    args = beamio.pipeline_args(["--runner=DirectRunner"], env)
    assert args == ["--runner=DirectRunner", "--s3_endpoint_url=http://127.0.0.1:9000", "--s3_region_name=eu-west-1"]
    assert not any("secret" in a for a in args), "credentials must not travel in pipeline options"
    assert beamio.worker_args(PipelineOptions(args)) == args[1:]
    # the user's own S3 flags win; tensorflow-io's host:port form gets its scheme from S3_USE_HTTPS
    assert beamio.pipeline_args(["--s3_endpoint_url=https://minio:9000"], env) == [
        "--s3_endpoint_url=https://minio:9000", "--s3_region_name=eu-west-1"]
    assert beamio.s3_pipeline_args({"S3_ENDPOINT": "minio:9000", "S3_USE_HTTPS": "0"}) == [
        "--s3_endpoint_url=http://minio:9000"]
    assert beamio.s3_pipeline_args({"AWS_ENDPOINT_URL_S3": "https://s3.example", "AWS_DEFAULT_REGION": "x"}) == [
        "--s3_endpoint_url=https://s3.example", "--s3_region_name=x"]
    assert beamio.s3_pipeline_args({}) == []


def test_a_zip_without_images_is_a_clear_error_after_listing(tmp_path):
    from components.ingest.config import IngestError

    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("README.txt", "no images here")
    with pytest.raises(IngestError, match="no image files .* found in"):
        run_ingest(IngestConfig(source=str(archive), size=16), str(tmp_path / "out"))
    assert os.path.isfile(tmp_path / "out" / "ingest_report.json"), "the report says what was seen"


def test_object_store_reads_share_one_s3_client_per_process(s3_env):
    """Beam's S3FileSystem builds a boto3 client for every open and size (~0.2 s each: an s3:// ingest ran at ~5
    photos/s); beamio reads every object of a process through one S3IO per S3 settings, and reads them right."""
    s3 = s3_env.client()
    bucket = s3_env.create_bucket("shared-client")
    s3.put_object(Bucket="shared-client", Key="a/1.png", Body=b"one")
    s3.put_object(Bucket="shared-client", Key="b/2.png", Body=b"second")
    beamio.ensure_options(beamio.s3_pipeline_args())
    first, second = beamio._s3io_for(f"{bucket}/a/1.png"), beamio._s3io_for(f"{bucket}/b/2.png")
    assert first is not None and first is second
    assert beamio._s3io_for("/tmp/local.png") is None
    with beamio.open_binary(f"{bucket}/b/2.png") as f:
        assert f.read() == b"second"
    assert beamio.size_of(f"{bucket}/a/1.png") == 3
