"""The TFX pipeline end to end on LocalDagRunner (real TFX, SQLite MLMD, Beam DirectRunner, our model server for the
infra check): the smoke preset pushes a blessed model, an unchanged re-run is served from cache, a failing gate does
not push; lineage reads it all back; the Kubeflow V2 spec compiles."""

from __future__ import annotations

import json
import os

import pytest

from dcgan.cli import main
from dcgan.config import ConfigError
from pipeline.config import PRESETS, PipelineConfig, preset

CACHED = 5  # metadata_store_pb2.Execution.CACHED


def _store(root: str):
    from pipeline.lineage import open_store

    return open_store(os.path.join(root, "metadata.sqlite"))


def _executions(root: str) -> list[tuple[int, str, int]]:
    store = _store(root)
    types = {t.id: t.name.rsplit(".", 1)[-1] for t in store.get_execution_types()}
    return [(e.id, types[e.type_id], e.last_known_state) for e in store.get_executions()]


def _versions(root: str) -> list[str]:
    base = os.path.join(root, "serving", "dcgan")
    return sorted(os.listdir(base)) if os.path.isdir(base) else []


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> str:
    """One real smoke-preset run (the CLI, as a user runs it)."""
    root = str(tmp_path_factory.mktemp("pipeline") / "smoke")
    assert main(["pipeline", "run", "--preset", "smoke", "--root", root]) == 0
    return root


@pytest.mark.slow
def test_smoke_run_writes_every_artifact_and_pushes_the_blessed_model(smoke_root, capsys):
    import tensorflow as tf

    art = os.path.join(smoke_root, "artifacts")
    examples = os.path.join(art, "FaceExampleGen", "examples")
    (examples_dir,) = [os.path.join(examples, d) for d in os.listdir(examples)]
    for split in ("Split-train", "Split-eval"):
        assert any(f.endswith(".tfrecord.gz") for f in os.listdir(os.path.join(examples_dir, split))), split
    (report_dir,) = [os.path.join(art, "FaceExampleGen", "ingest_report", d)
                     for d in os.listdir(os.path.join(art, "FaceExampleGen", "ingest_report"))]
    assert {"ingest_report.json", "ingest_report.txt", "preview.png"} <= set(os.listdir(report_dir))
    (run_dir,) = [os.path.join(art, "Trainer", "model_run", d) for d in os.listdir(os.path.join(art, "Trainer",
                                                                                                 "model_run"))]
    assert {"config.json", "checkpoints", "logs", "samples", "training_summary.json"} <= set(os.listdir(run_dir))
    (evaluation,) = [os.path.join(art, "FidEvaluator", "evaluation", d)
                     for d in os.listdir(os.path.join(art, "FidEvaluator", "evaluation"))]
    assert {"metrics.json", "samples.png", "memorization.png"} <= set(os.listdir(evaluation))
    # Data validation (the curated avatars schema): every split passed, with TFX's artifacts and the pictures.
    (anomalies,) = [os.path.join(art, "ExampleValidator", "anomalies", d)
                    for d in os.listdir(os.path.join(art, "ExampleValidator", "anomalies"))]
    assert {"Split-train", "Split-eval", "anomalies.txt", "statistics.html", "statistics.png"} <= \
        set(os.listdir(anomalies))
    assert "no anomalies" in open(os.path.join(anomalies, "anomalies.txt")).read()
    assert os.path.isfile(os.path.join(art, "ExampleValidator", "baseline", "statistics.pb"))

    (version,) = _versions(smoke_root)
    pushed = os.path.join(smoke_root, "serving", "dcgan", version)
    model = tf.saved_model.load(pushed)
    assert {"serving_default", "generate", "interpolate"} <= set(model.signatures)
    out = model.signatures["generate"](seed=tf.constant([1, 2], tf.int64))
    assert out["png_bytes"].shape == (2,) and out["z"].shape == (2, 100)
    assert os.path.isfile(os.path.join(pushed, "assets.extra", "training_summary.json"))
    # The FID reference statistics of the eval split travel with the model (for `dcgan rollout canary --analyze`),
    # from the same images the evaluator scored against.
    from dcgan.metrics.reference import read_reference_stats

    reference = read_reference_stats(pushed)
    metrics = json.load(open(os.path.join(evaluation, "metrics.json")))
    assert reference.n == metrics["metrics"]["num_real"]
    assert reference.meta["data_fingerprint"] == metrics["inputs"]["data_fingerprint"]
    assert reference.meta["max_fid_regression"] == 1000.0  # the smoke preset's gate


def test_metrics_and_blessings_are_recorded_in_mlmd(smoke_root):
    store = _store(smoke_root)
    by_type = {}
    for t in store.get_artifact_types():
        by_type[t.name] = store.get_artifacts_by_type(t.name)
    (evaluation,) = by_type["dcgan.FidEvaluation"]
    props = {k: v for k, v in evaluation.custom_properties.items()}
    assert props["fid"].double_value > 0 and props["fid_floor"].double_value > 0
    assert props["num_samples"].int_value == 64 and props["blessed"].int_value == 1
    (blessing,) = by_type["ModelBlessing"]
    assert blessing.custom_properties["blessed"].int_value == 1
    (infra,) = by_type["InfraBlessing"]
    assert infra.custom_properties["blessed"].int_value == 1
    (pushed,) = by_type["PushedModel"]
    assert pushed.custom_properties["pushed"].int_value == 1
    assert _versions(smoke_root) == [pushed.custom_properties["pushed_version"].string_value]
    kinds = {kind for _, kind, _ in _executions(smoke_root)}
    assert {"FaceExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "Trainer", "Resolver",
            "FidEvaluator", "InfraCheck", "Pusher"} <= kinds
    (anomalies,) = by_type["ExampleAnomalies"]
    blessed = anomalies.custom_properties["blessed"].struct_value.fields  # what TFX's ExampleValidator sets
    assert {split: value.number_value for split, value in blessed.items()} == {"train": 1, "eval": 1, "inputs": 1}


def test_lineage_of_the_pushed_model_reads_data_training_evaluation_and_blessing(smoke_root, capsys):
    from pipeline.lineage import lineage

    info = lineage(os.path.join(smoke_root, "metadata.sqlite"))
    rows = {(s, f): v for s, f, v in info.rows}
    assert rows[("data", "source")] == "avatars:160:0"
    assert rows[("training", "steps done")] == "30"
    assert rows[("training", "architecture")].startswith("32x32")
    assert rows[("evaluation", "FID")].split()[0].replace(".", "").isdigit()
    assert rows[("blessing", "model blessed")] == "yes"
    assert rows[("data validation", "result")].startswith("passed"), rows
    assert rows[("data validation", "statistics")].split()[0].endswith("statistics.html")
    assert rows[("blessing", "infra check")].startswith("passed")
    assert main(["lineage", "--root", smoke_root]) == 0
    assert "avatars:160:0" in capsys.readouterr().out
    assert main(["lineage", "--root", smoke_root, "--version", "123"]) == 1
    assert "no pushed version 123" in capsys.readouterr().err


def test_the_summary_shows_fid_over_the_real_vs_real_floor(smoke_root):
    """The summary's FID/floor line is the evaluation's FID divided by its floor (training vs eval images, same N)."""
    import re

    from pipeline.summary import floor_ratio_text, run_summary

    text = run_summary(preset("smoke").override([f"root={smoke_root}"])).text
    (line,) = [x for x in text.splitlines() if x.strip().startswith("FID/floor:")]
    evaluation = os.path.join(smoke_root, "artifacts", "FidEvaluator", "evaluation")
    (metrics_file,) = [os.path.join(evaluation, d, "metrics.json") for d in os.listdir(evaluation)]
    metrics = json.load(open(metrics_file))["metrics"]
    shown = float(re.search(r"(\d+\.\d+)× the real-vs-real floor", line).group(1))
    assert shown == pytest.approx(metrics["fid"] / metrics["fid_floor"], abs=0.006)
    assert floor_ratio_text({"metrics": {"fid": 80.0, "fid_floor": 0.0}}).startswith("? (no floor")
    assert floor_ratio_text(None).startswith("?")


def test_the_summary_names_the_machine_and_the_kernels_beside_the_time(smoke_root):
    """A run's time means little without its CPU: the first line names it, its ISA and whether TensorFlow ran oneDNN
    (these machines come as an AVX-512 Zen 4 or an AVX2 Zen 3, about 2x apart); the model records the same."""
    from dcgan.runtime import cpu_info, onednn_text
    from pipeline.summary import run_summary

    first = run_summary(preset("smoke").override([f"root={smoke_root}"]), wall_seconds=90).text.splitlines()[0]
    cpu = cpu_info()
    assert first.startswith("pipeline finished in 1.5 min") and f"on {cpu.model}, {cpu.cores} cores, {cpu.isa}" in first
    assert first.endswith(onednn_text())
    (version,) = _versions(smoke_root)
    with open(os.path.join(smoke_root, "serving", "dcgan", version, "assets.extra", "training_summary.json")) as f:
        assert json.load(f)["machine"].startswith(cpu.describe() + "; tensorflow ")


def test_an_unchanged_rerun_is_served_from_the_cache_and_pushes_nothing_new(smoke_root, capsys):
    """Re-run 1: ingest, Trainer and InfraCheck come from the cache; the resolver now finds the first run's blessed
    model — the candidate itself — so the evaluator only records "unchanged" (no evaluation, no duplicate push).
    Re-run 2: every component comes from the cache."""
    before = {e for e, _, _ in _executions(smoke_root)}
    assert main(["pipeline", "run", "--preset", "smoke", "--root", smoke_root]) == 0
    assert "UNCHANGED" in capsys.readouterr().out
    new = {kind: state for e, kind, state in _executions(smoke_root) if e not in before}
    assert all(new[kind] == CACHED for kind in ("FaceExampleGen", "StatisticsGen", "ImportSchemaGen",
                                                "ExampleValidator", "Trainer", "InfraCheck")), new
    store = _store(smoke_root)
    blessings = sorted(store.get_artifacts_by_type("ModelBlessing"), key=lambda a: a.id)
    assert blessings[-1].custom_properties["unchanged"].int_value == 1
    assert len(_versions(smoke_root)) == 1

    before = {e for e, _, _ in _executions(smoke_root)}
    assert main(["pipeline", "run", "--preset", "smoke", "--root", smoke_root]) == 0
    assert "all steps from the cache" in capsys.readouterr().out
    new = [(kind, state) for e, kind, state in _executions(smoke_root) if e not in before and kind != "Resolver"]
    assert new and all(state == CACHED for _, state in new), f"not every component was cached: {new}"
    assert len(_versions(smoke_root)) == 1


@pytest.mark.slow
def test_a_model_that_fails_the_gate_is_not_pushed(smoke_root, capsys):
    """A new candidate (other step count) under a strict absolute threshold: the evaluator refuses it and records why;
    the Pusher does not write a new version; the CLI exits non-zero. (Without attribute directions: they play no part
    in the gate, and the first run computed them.)"""
    code = main(["pipeline", "run", "--preset", "smoke", "--root", smoke_root, "--set", "train.steps=20",
                 "--set", "evaluation.fid_threshold=1.0", "--set", "directions.enabled=false"])
    out = capsys.readouterr().out
    assert code == 3 and "NOT PUSHED" in out and "threshold" in out
    store = _store(smoke_root)
    blessings = sorted(store.get_artifacts_by_type("ModelBlessing"), key=lambda a: a.id)
    assert blessings[-1].custom_properties["blessed"].int_value == 0
    assert "threshold 1.00" in blessings[-1].custom_properties["reason"].string_value
    pushed = sorted(store.get_artifacts_by_type("PushedModel"), key=lambda a: a.id)
    assert pushed[-1].custom_properties["pushed"].int_value == 0
    assert len(_versions(smoke_root)) == 1


def test_open_source_kubeflow_spec_compiles_with_every_component_image_and_parameter(tmp_path, capsys):
    """The default target: a PipelineSpec YAML for open-source Kubeflow Pipelines (schema 2.1.0, parameters as
    runtimeValue.constant, no resolver: the evaluator's baseline is the serving store)."""
    from pipeline.kfp_spec import load

    output = str(tmp_path / "pipeline.yaml")
    assert main(["pipeline", "compile", "--kubeflow", "--preset", "full", "--data", "/data/celeba.zip",
                 "--root", "gs://bucket/dcgan", "--image", "registry.example/dcgan-pipeline:1.2.3",
                 "--output", output]) == 0
    assert "PipelineSpec for open-source Kubeflow Pipelines" in capsys.readouterr().out
    spec = load(output)
    assert spec["schemaVersion"] == "2.1.0" and spec["defaultPipelineRoot"] == "gs://bucket/dcgan/artifacts"
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"FaceExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer",
                          "FidEvaluator", "InfraCheck", "Pusher"}
    assert tasks["Trainer"]["inputs"]["artifacts"]["data_validation"]["taskOutputArtifact"]["producerTask"] == \
        "ExampleValidator"  # the gate: a drop with anomalies is not trained on
    assert tasks["ExampleValidator"]["inputs"]["parameters"]["baseline_path"]["runtimeValue"]["constant"] == \
        "gs://bucket/dcgan/artifacts/ExampleValidator/baseline"
    assert tasks["Pusher"]["dependentTasks"] == ["FidEvaluator", "InfraCheck", "Trainer"]
    assert {t["componentRef"]["name"] for t in tasks.values()} == {f"comp-{t}" for t in tasks}
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"registry.example/dcgan-pipeline:1.2.3"}
    params = tasks["Trainer"]["inputs"]["parameters"]
    train_config = json.loads(params["custom_config"]["runtimeValue"]["constant"])["train_config"]
    assert train_config["model"] == {"size": 64, "ngf": 128, "ndf": 128, "kernel_size": 5, "channels": 3,
                                     "z_dim": 100}
    assert json.loads(params["train_args"]["runtimeValue"]["constant"])["num_steps"] == 50000
    ingest = tasks["FaceExampleGen"]["inputs"]["parameters"]
    assert ingest["source"]["runtimeValue"]["constant"] == "/data/celeba.zip"
    evaluator = tasks["FidEvaluator"]["inputs"]
    assert evaluator["parameters"]["num_samples"]["runtimeValue"]["constant"] == 10000
    assert evaluator["parameters"]["baseline_base_path"]["runtimeValue"]["constant"] == \
        "gs://bucket/dcgan/serving/dcgan"
    assert set(evaluator["artifacts"]) == {"model", "examples"}


def test_vertex_spec_compiles_to_a_pipeline_job_with_the_latest_blessed_model_resolver(tmp_path, capsys):
    output = str(tmp_path / "pipeline.json")
    assert main(["pipeline", "compile", "--kubeflow", "--target", "vertex", "--preset", "full", "--data",
                 "/data/celeba.zip", "--root", "gs://bucket/dcgan", "--image", "registry.example/dcgan-pipeline:1.2.3",
                 "--output", output]) == 0
    assert "PipelineJob for Vertex AI Pipelines" in capsys.readouterr().out
    job = json.load(open(output))
    spec = job["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    assert {"FaceExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer", "FidEvaluator",
            "InfraCheck", "Pusher"} <= set(tasks)
    assert any(t.startswith("latest_blessed_model_resolver") for t in tasks)
    assert tasks["FidEvaluator"]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"]["producerTask"] == \
        "latest_blessed_model_resolver-model-resolver"
    params = tasks["Trainer"]["inputs"]["parameters"]
    assert json.loads(params["train_args"]["runtimeValue"]["constantValue"]["stringValue"])["num_steps"] == 50000
    evaluator = tasks["FidEvaluator"]["inputs"]["parameters"]
    assert evaluator["num_samples"]["runtimeValue"]["constantValue"]["intValue"] == "10000"
    assert "baseline_base_path" not in evaluator
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/dcgan/artifacts"


def test_presets_validate_and_every_value_is_overridable():
    for name in PRESETS:
        config = preset(name)
        if name == "full":
            with pytest.raises(ConfigError, match="data is empty"):
                config.validate()
            config = config.override(["data=/data/celeba.zip"])
        config.validate()
        assert PipelineConfig.from_dict(json.loads(config.to_json())) == config
    config = preset("quick").override(["train.steps=10", "train.size=64", "evaluation.fid_threshold=99.5",
                                       "beam.runner=multiprocess", "enable_cache=false", "ingest.eval_ratio=0.2"])
    assert (config.train.steps, config.train.model.size, config.evaluation.fid_threshold) == (10, 64, 99.5)
    assert config.beam_pipeline_args()[:2] == ["--runner=DirectRunner", "--direct_num_workers=2"]
    assert config.enable_cache is False and config.ingest.eval_ratio == 0.2
    standard = preset("standard")
    assert (standard.train.model.size, standard.train.model.ngf, standard.evaluation.num_samples) == (64, 64, 1000)


@pytest.mark.parametrize("assignment,message", [
    ("train.stepz=3", "has no field 'stepz'"),
    ("train.steps=many", "expected int"),
    ("evaluation=3", "is a section"),
    ("beam.runner=flink", "beam.runner='flink'"),
    ("ingest.eval_ratio=0", "must be in (0, 1)"),
    ("novalue", "expected KEY=VALUE"),
])
def test_bad_overrides_name_what_was_wrong(assignment, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        preset("smoke").override([assignment]).validate()


# -- direct flags and ingest settings (issue 14, item 4) -----------------------------------------------------------
def test_steps_zero_is_refused_with_a_clear_error_not_silently_dropped(capsys):
    """`--steps 0` used to be dropped by a truthiness check: the preset's 30 steps ran instead."""
    assert main(["pipeline", "run", "--preset", "smoke", "--steps", "0", "--show-config"]) == 2
    err = capsys.readouterr().err
    assert "steps=0 must be a positive integer" in err and "Traceback" not in err


def test_workers_zero_is_honoured_as_one_worker_per_core(capsys):
    """`--workers 0` (valid: one worker per core) used to be dropped, leaving the preset's 2 workers."""
    assert main(["pipeline", "run", "--preset", "quick", "--runner", "multiprocess", "--workers", "0",
                 "--show-config"]) == 0
    config = PipelineConfig.from_dict(json.loads(capsys.readouterr().out))
    assert config.beam.runner == "multiprocess" and config.beam.workers == 0
    assert "--direct_num_workers=0" in config.beam_pipeline_args()


def test_every_ingest_setting_reaches_the_example_gen_component(tmp_path):
    """margin, min_confidence, detect_size, max_pixels, attributes_file (and every other IngestConfig field but the
    source and size, which come from data and train.size) are settable with --set ingest.<field>."""
    import dataclasses

    from components.ingest.config import IngestConfig
    from pipeline.config import IngestSettings
    from pipeline.pipeline import create_pipeline

    settable = {f.name for f in dataclasses.fields(IngestSettings)}
    assert settable == {f.name for f in dataclasses.fields(IngestConfig)} - {"source", "size"}
    attributes = tmp_path / "list_attr_celeba.txt"
    attributes.write_text("0\nSmiling\n")
    config = preset("smoke").override([
        "ingest.mode=align", "ingest.margin=0.3", "ingest.min_confidence=0.8", "ingest.detect_size=320",
        "ingest.max_pixels=1000000", f"ingest.attributes_file={attributes}", "ingest.face=central",
        "ingest.min_face_size=20", "ingest.detection_batch=4", "ingest.worker_threads=1", "ingest.preview_count=8",
        f"root={tmp_path / 'root'}"]).validate()
    component = next(c for c in create_pipeline(config).components if c.id == "FaceExampleGen")
    props = component.exec_properties
    assert (props["mode"], props["margin"], props["min_confidence"], props["detect_size"], props["max_pixels"],
            props["attributes_file"]) == ("align", 0.3, 0.8, 320, 1_000_000, str(attributes))
    assert (props["face"], props["min_face_size"], props["detection_batch"], props["worker_threads"],
            props["preview_count"]) == ("central", 20, 4, 1, 8)
    # The defaults are the component's own, and "off" is None there too.
    defaults = IngestSettings()
    for f in dataclasses.fields(IngestConfig):
        if f.name not in ("source", "size"):
            assert getattr(defaults, f.name) == f.default, f.name
    assert preset("full").override(["ingest.crop_size=none"]).ingest.crop_size is None


def test_bad_ingest_settings_are_refused_when_the_config_is_validated():
    with pytest.raises(ConfigError, match="ingest: .*margin"):
        preset("smoke").override(["ingest.margin=-1"]).validate()
