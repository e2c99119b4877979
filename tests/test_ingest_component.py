"""FaceExampleGen inside a real TFX pipeline: LocalDagRunner with SQLite MLMD, just this component.

The Examples artifact must be registered in MLMD with split_names ["train", "eval", "inputs"] and the counts, the splits
must be on disk in the TFX layout, the IngestReport artifact must hold the report, a second run must be a cache
hit, and `dcgan train --data <examples uri>` must find the training split.
"""

from __future__ import annotations

import glob
import json
import os

import pytest

from components.ingest import report as reportlib
from dcgan import schema


@pytest.fixture(scope="module")
def tfx_run(tmp_path_factory):
    from tfx.orchestration import metadata
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from components.ingest.component import FaceExampleGen

    root = tmp_path_factory.mktemp("tfx")
    connection = metadata.sqlite_metadata_connection_config(str(root / "mlmd.sqlite"))

    def run() -> None:
        gen = FaceExampleGen(source="avatars:40:2", size=32, eval_ratio=0.25, preview_count=9)
        pipeline = tfx_pipeline.Pipeline(pipeline_name="ingest-only", pipeline_root=str(root / "pipeline"),
                                         components=[gen], metadata_connection_config=connection,
                                         enable_cache=True, beam_pipeline_args=["--direct_running_mode=in_memory"])
        LocalDagRunner().run(pipeline)

    run()
    run()  # same component, same parameters: TFX must reuse the first execution's outputs
    return connection


def _store(connection):
    import ml_metadata as mlmd

    return mlmd.MetadataStore(connection)


def test_examples_artifact_has_both_splits_in_mlmd_and_on_disk(tfx_run):
    store = _store(tfx_run)
    (examples,) = store.get_artifacts_by_type("Examples")
    assert json.loads(examples.properties["split_names"].string_value) == ["train", "eval", "inputs"]
    props = {k: v.int_value for k, v in examples.custom_properties.items() if k.startswith("num_")}
    assert props["num_input"] == 40 == props["num_train"] + props["num_eval"] and props["num_rejected"] == 0
    assert examples.custom_properties["payload_format"].string_value == "FORMAT_TF_EXAMPLE"
    for split in schema.SPLITS:
        files = glob.glob(os.path.join(examples.uri, f"Split-{split}", "*"))
        assert files and all(f.endswith(schema.FILE_SUFFIX) for f in files)
        records = schema.read_examples(sorted(files))
        assert len(records) == props[f"num_{split}"]
    inputs = schema.read_examples(sorted(glob.glob(schema.split_pattern(examples.uri, schema.INPUTS_SPLIT))))
    assert len(inputs) == props["num_input"], "one inputs row per input item"


def test_ingest_report_artifact_holds_the_report(tfx_run):
    store = _store(tfx_run)
    (report_artifact,) = store.get_artifacts_by_type("dcgan.IngestReport")
    report = reportlib.load_report(report_artifact.uri)
    assert report.input_count == 40 and report.written_total == 40
    assert os.path.isfile(os.path.join(report_artifact.uri, reportlib.PREVIEW_PNG))
    assert os.path.isfile(os.path.join(report_artifact.uri, reportlib.REPORT_TEXT))
    assert report_artifact.custom_properties["num_input"].int_value == 40


def test_second_run_is_a_cache_hit(tfx_run):
    from ml_metadata.proto import metadata_store_pb2

    store = _store(tfx_run)
    executions = store.get_executions()
    states = sorted(metadata_store_pb2.Execution.State.Name(e.last_known_state) for e in executions)
    assert states == ["CACHED", "COMPLETE"], states
    assert len(store.get_artifacts_by_type("Examples")) == 1


def test_trainer_input_resolution_reads_the_artifact(tfx_run):
    from dcgan.data import resolve_data

    (examples,) = _store(tfx_run).get_artifacts_by_type("Examples")
    resolved = resolve_data(examples.uri)
    assert resolved.kind == "tfrecord" and resolved.files
    assert all(os.sep + "Split-train" + os.sep in f for f in resolved.files)


def test_component_validates_its_parameters_at_construction():
    from components.ingest.component import FaceExampleGen
    from components.ingest.config import IngestError

    with pytest.raises(IngestError, match="eval_ratio"):
        FaceExampleGen(source="avatars:10:0", eval_ratio=2.0)
    with pytest.raises(IngestError, match="matches no image files"):
        FaceExampleGen(source="/no/such/folder/*.jpg")
