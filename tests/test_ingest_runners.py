"""The same ingest on real parallel Beam engines: multi-process DirectRunner and Dask (distributed.LocalCluster).

Each must write exactly the records of the in-process run (byte-identical shards: placement depends on content
only) and the same report. Worker processes import TensorFlow (~10 s each), so inputs are kept tiny.
"""

from __future__ import annotations

import glob
import os

import pytest
from conftest import write_synthetic_images

from components.ingest.config import IngestConfig
from components.ingest.pipeline import run_ingest
from dcgan import images as imlib
from dcgan import schema


def _shards(out: str) -> dict[str, bytes]:
    return {os.path.relpath(p, out): open(p, "rb").read() for p in sorted(glob.glob(os.path.join(out, "Split-*", "*")))}


def _written_ids(out: str) -> set[str]:
    return {r[schema.ID_KEY] for s in schema.SPLITS
            for r in schema.read_examples(sorted(glob.glob(schema.split_pattern(out, s))))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A folder of 24 images + a bad file and a duplicate, and its ingest on the in-process DirectRunner."""
    root = tmp_path_factory.mktemp("runners")
    folder = write_synthetic_images(str(root / "images"), n=24, size=40, seed=3)
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "images" / "zz_copy.png").write_bytes((root / "images" / "img_0000.png").read_bytes())
    # records_per_shard=8: several shards per split, so a runner that split a shard's group would show.
    config = IngestConfig(source=folder, size=32, eval_ratio=0.2, records_per_shard=8)
    out = str(root / "in_process")
    report = run_ingest(config, out)
    assert report.written_total == 24 and {r.reason for r in report.rejects} == {imlib.NOT_AN_IMAGE, "duplicate"}
    outcomes = {r[schema.ID_KEY]: r["features"][schema.OUTCOME_KEY]
                for r in schema.read_examples(sorted(glob.glob(schema.split_pattern(out, schema.INPUTS_SPLIT))))}
    assert len(outcomes) == 26 and outcomes["broken.png"] == imlib.NOT_AN_IMAGE
    assert outcomes["zz_copy.png"] == schema.ACCEPTED, "duplicates are decided later: accepted in the inputs split"
    return config, out, report


def _same_as_reference(reference, out: str, report) -> None:
    _, ref_out, ref_report = reference
    assert _written_ids(out) == _written_ids(ref_out), "records lost or added"
    assert _shards(out) == _shards(ref_out), "shards differ from the in-process run"
    assert f"Split-inputs/data-00000-of-00001{schema.FILE_SUFFIX}" in _shards(out), "the inputs split is compared too"
    assert report.written == ref_report.written
    assert sorted((r.id, r.reason) for r in report.rejects) == sorted((r.id, r.reason) for r in ref_report.rejects)


@pytest.mark.slow
def test_multi_process_direct_runner_writes_the_same_records(reference, tmp_path):
    config, _, _ = reference
    out = str(tmp_path / "multi")
    report = run_ingest(config, out, beam_pipeline_args=["--direct_num_workers=2",
                                                         "--direct_running_mode=multi_processing"])
    assert report.runner == "DirectRunner (multi_processing, 2 workers)"
    _same_as_reference(reference, out, report)


@pytest.mark.slow
def test_dask_runner_on_a_local_cluster_writes_the_same_records(reference, tmp_path):
    from components.ingest.cli import local_dask_cluster

    config, _, _ = reference
    out = str(tmp_path / "dask")
    with local_dask_cluster(2) as cluster:
        report = run_ingest(config, out, beam_pipeline_args=[
            "--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
            f"--dask_client_address={cluster.scheduler_address}"])
    assert report.runner == "DaskRunner"
    _same_as_reference(reference, out, report)
