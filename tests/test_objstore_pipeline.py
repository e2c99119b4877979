"""The smoke pipeline end to end with --data, --root and --serving-root on S3 (a real S3 server on loopback, moto):
LocalDagRunner runs ingest (160 avatar PNGs read from s3://), Trainer, FidEvaluator, InfraCheck and Pusher with
every artifact, checkpoint and the pushed SavedModel on s3://; only MLMD's SQLite file stays local (in the
DCGAN_CACHE folder). Run as a user runs it: the `dcgan` console script in a subprocess, which must exit 0
(tensorflow-io's abort at exit is avoided by dcgan.fileio.exit_process)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from dcgan.avatars import iter_avatars

DCGAN = os.path.join(os.path.dirname(sys.executable), "dcgan")


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


@pytest.fixture(scope="module")
def s3_smoke(s3_server, tmp_path_factory):
    bucket = s3_server.create_bucket("objstore-smoke")
    cache = str(tmp_path_factory.mktemp("dcgan-cache"))
    cwd = str(tmp_path_factory.mktemp("cwd"))
    env = {**os.environ, **s3_server.environment, "DCGAN_CACHE": cache}
    root, serving = f"{bucket}/runs/smoke", f"{bucket}/serving"
    s3 = s3_server.client()
    for i, (_, image, _) in enumerate(iter_avatars(160, seed=0, size=64)):  # the smoke data, as files on S3
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        s3.put_object(Bucket="objstore-smoke", Key=f"images/{i:04d}.png", Body=buf.getvalue())
    proc = subprocess.run([DCGAN, "pipeline", "run", "--preset", "smoke", "--data", f"{bucket}/images",
                           "--set", "ingest.mode=none", "--root", root, "--serving-root", serving],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    return {"proc": proc, "cwd": cwd, "root": root, "serving": serving, "cache": cache, "env": env,
            "s3": s3_server.client()}


@pytest.mark.slow
def test_smoke_pipeline_on_an_s3_root_pushes_to_s3(s3_smoke):
    proc = s3_smoke["proc"]
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "PUSHED model 'dcgan' version" in proc.stdout
    assert "s3://objstore-smoke/serving/dcgan/" in proc.stdout  # the summary names the S3 destination
    keys = _keys(s3_smoke["s3"], "objstore-smoke", "")
    pushed = [k for k in keys if k.startswith("serving/dcgan/") and k.endswith("/saved_model.pb")]
    assert len(pushed) == 1
    version = pushed[0].split("/")[2]
    for name in ("variables/variables.index", "assets.extra/dcgan.json"):
        assert f"serving/dcgan/{version}/{name}" in keys
    # every artifact lives under the S3 root: examples, checkpoints, TensorBoard logs, samples, evaluation
    art = "runs/smoke/artifacts/"
    assert any(k.startswith(art + "FaceExampleGen/examples/") and "/Split-train/" in k for k in keys)
    assert any(k.startswith(art + "Trainer/model_run/") and "/checkpoints/ckpt-30" in k for k in keys)
    assert any(k.startswith(art + "Trainer/model_run/") and "/logs/" in k and "tfevents" in k for k in keys)
    assert any(k.startswith(art + "Trainer/model_run/") and k.endswith(".png") for k in keys)
    assert any(k.startswith(art + "FidEvaluator/") and k.endswith("BLESSED") for k in keys)
    assert "runs/smoke/pipeline_config.json" in keys
    # nothing was written to a local folder named like the URL
    assert os.listdir(s3_smoke["cwd"]) == []
    # MLMD stays local, in the cache folder named after the root
    assert os.path.isfile(os.path.join(s3_smoke["cache"], "s3", "objstore-smoke", "runs", "smoke", "metadata.sqlite"))


def test_lineage_of_an_s3_root_reads_the_local_metadata_cache(s3_smoke):
    assert s3_smoke["proc"].returncode == 0
    proc = subprocess.run([DCGAN, "lineage", "--root", s3_smoke["root"], "--json"], env=s3_smoke["env"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    destination = {(s, f): v for s, f, v in doc["rows"]}[("pushed model", "destination")]
    assert destination.startswith("s3://objstore-smoke/serving/dcgan/")
