"""FidEvaluator in a real TFX pipeline: LocalDagRunner with SQLite MLMD, the stock Pusher downstream.

Pipeline: Importer(model, laid out as a TFX Trainer writes it: `<uri>/Format-Serving/`) + Importer(examples) →
Resolver(LatestBlessedModelStrategy) for the baseline → FidEvaluator → Pusher(filesystem destination).
Run 1: an oracle generator (real-looking images) is blessed and pushed. Run 2: a barely trained generator, with
run 1's model resolved as its baseline, is not blessed (over the threshold and worse than the baseline), and
Pusher pushes nothing. Both decisions, their reasons and the metrics are in MLMD.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from test_metrics_support import (  # noqa: F401 - metrics_cache is a fixture
    export_oracle_generator,
    face_images,
    metrics_cache,
    write_examples,
)

N = 16
THRESHOLD = 150.0


def _as_trainer_output(saved_model: str, uri: str) -> str:
    shutil.copytree(saved_model, os.path.join(uri, "Format-Serving"))
    return uri


@pytest.fixture(scope="module")
def pipeline_runs(tmp_path_factory, tiny_saved_model, metrics_cache):  # noqa: F811
    from tfx import v1 as tfx
    from tfx.orchestration import metadata
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from components.evaluator.component import FidEvaluator

    root = tmp_path_factory.mktemp("tfx-eval")
    examples = write_examples(str(root / "examples"))
    oracle = export_oracle_generator(str(root / "oracle-export"), face_images(32, 2))
    models = {"oracle": _as_trainer_output(oracle, str(root / "models" / "oracle")),
              "untrained": _as_trainer_output(tiny_saved_model, str(root / "models" / "untrained"))}
    serving = root / "serving" / "dcgan"
    connection = metadata.sqlite_metadata_connection_config(str(root / "mlmd.sqlite"))

    def run(model_uri: str) -> None:
        model = tfx.dsl.Importer(source_uri=model_uri, artifact_type=tfx.types.standard_artifacts.Model
                                 ).with_id("model_importer")
        data = tfx.dsl.Importer(source_uri=examples, artifact_type=tfx.types.standard_artifacts.Examples,
                                properties={"split_names": '["train", "eval"]'}).with_id("examples_importer")
        baseline = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id("latest_blessed_model_resolver")
        evaluator = FidEvaluator(model=model.outputs["result"], examples=data.outputs["result"],
                                 baseline_model=baseline.outputs["model"], num_samples=N, fid_threshold=THRESHOLD,
                                 max_fid_regression=10.0, kid_subsets=10, memorization_reference=None)
        pusher = tfx.components.Pusher(
            model=model.outputs["result"], model_blessing=evaluator.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(serving))))
        pipeline = tfx_pipeline.Pipeline(
            pipeline_name="fid-gate", pipeline_root=str(root / "pipeline"), metadata_connection_config=connection,
            components=[model, data, baseline, evaluator, pusher], enable_cache=False)
        LocalDagRunner().run(pipeline)

    run(models["oracle"])
    pushed_after_first = sorted(os.listdir(serving)) if serving.exists() else []
    run(models["untrained"])
    return {"connection": connection, "models": models, "serving": serving, "pushed_after_first": pushed_after_first,
            "examples": examples}


def _store(connection):
    import ml_metadata as mlmd

    return mlmd.MetadataStore(connection)


def _props(artifact) -> dict:
    out = {}
    for k, v in artifact.custom_properties.items():
        kind = v.WhichOneof("value")
        out[k] = getattr(v, kind) if kind else None
    return out


def test_pusher_pushes_the_blessed_model_and_only_it(pipeline_runs):
    serving = pipeline_runs["serving"]
    assert len(pipeline_runs["pushed_after_first"]) == 1  # run 1: the oracle was pushed
    versions = sorted(os.listdir(serving))
    assert versions == pipeline_runs["pushed_after_first"]  # run 2 pushed nothing
    assert os.path.isfile(os.path.join(serving, versions[0], "saved_model.pb"))
    pushes = _store(pipeline_runs["connection"]).get_artifacts_by_type("PushedModel")
    pushed = sorted(_props(p).get("pushed", 0) for p in pushes)
    assert pushed == [0, 1], pushed


def test_blessings_record_the_decision_and_the_reason_in_mlmd(pipeline_runs):
    store = _store(pipeline_runs["connection"])
    models = {m.uri: m for m in store.get_artifacts_by_type("Model")}
    blessings = sorted(store.get_artifacts_by_type("ModelBlessing"), key=lambda a: a.id)
    assert len(blessings) == 2
    first, second = (_props(b) for b in blessings)
    oracle, untrained = models[pipeline_runs["models"]["oracle"]], models[pipeline_runs["models"]["untrained"]]

    assert first["blessed"] == 1 and first["current_model_id"] == oracle.id
    assert first["fid"] <= THRESHOLD and first["reason"].startswith("blessed")
    assert "baseline_model_id" not in first and "no baseline" in first["reason"]
    assert os.path.isfile(os.path.join(blessings[0].uri, "BLESSED"))

    assert second["blessed"] == 0 and second["current_model_id"] == untrained.id
    assert second["baseline_model_id"] == oracle.id  # resolved by LatestBlessedModelStrategy
    assert second["fid"] > THRESHOLD and second["baseline_fid"] == pytest.approx(first["fid"], rel=1e-6)
    assert "> threshold" in second["reason"] and "beyond the allowed regression" in second["reason"]
    with open(os.path.join(blessings[1].uri, "NOT_BLESSED")) as f:
        assert f.read().strip() == second["reason"]


def test_evaluation_artifact_holds_metrics_and_grids(pipeline_runs):
    store = _store(pipeline_runs["connection"])
    evaluations = sorted(store.get_artifacts_by_type("dcgan.FidEvaluation"), key=lambda a: a.id)
    assert len(evaluations) == 2
    for evaluation in evaluations:
        files = set(os.listdir(evaluation.uri))
        assert {"metrics.json", "samples.png", "memorization.png", "memorization.json"} <= files
        props = _props(evaluation)
        for key in ("fid", "fid_floor", "kid_mean", "kid_std", "precision", "recall", "num_samples", "reason"):
            assert key in props, key
        saved = json.load(open(os.path.join(evaluation.uri, "metrics.json")))
        assert saved["metrics"]["fid"] == pytest.approx(props["fid"]) and props["num_samples"] == N
    assert _props(evaluations[0])["blessed"] == 1 and _props(evaluations[1])["blessed"] == 0


def test_component_validates_its_parameters_at_construction():
    from tfx import v1 as tfx

    from components.evaluator.component import FidEvaluator
    from dcgan.metrics.evaluate import EvaluationError

    model = tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model)
    examples = tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples)
    with pytest.raises(EvaluationError, match="fid_threshold"):
        FidEvaluator(model=model, examples=examples, fid_threshold=-3)
    with pytest.raises(EvaluationError, match="num_samples"):
        FidEvaluator(model=model, examples=examples, num_samples=1)
    evaluator = FidEvaluator(model=model, examples=examples)
    assert set(evaluator.outputs) == {"blessing", "evaluation"}


def test_pipeline_with_the_evaluator_compiles_for_kubeflow_v2(tmp_path):
    from tfx import v1 as tfx

    from components.evaluator.component import FidEvaluator

    model = tfx.dsl.Importer(source_uri="gs://bucket/model", artifact_type=tfx.types.standard_artifacts.Model
                             ).with_id("model_importer")
    data = tfx.dsl.Importer(source_uri="gs://bucket/examples", artifact_type=tfx.types.standard_artifacts.Examples
                            ).with_id("examples_importer")
    evaluator = FidEvaluator(model=model.outputs["result"], examples=data.outputs["result"], fid_threshold=100.0)
    pipeline = tfx.dsl.Pipeline(pipeline_name="fid-gate", pipeline_root="gs://bucket/root",
                                components=[model, data, evaluator])
    out = tmp_path / "pipeline.json"
    tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image="dcgan:test"),
        output_filename=str(out)).run(pipeline)
    spec = json.loads(out.read_text())["pipelineSpec"]
    outputs = spec["components"]["FidEvaluator"]["outputDefinitions"]["artifacts"]
    assert outputs["evaluation"]["artifactType"]["instanceSchema"].startswith("title: dcgan.FidEvaluation")
    assert outputs["blessing"]["artifactType"]["instanceSchema"].startswith("title: tfx.ModelBlessing")


# -- the baseline from the serving store (open-source Kubeflow Pipelines: no resolver) --------------------------------
def _version(base, version: int, complete: bool = True) -> str:
    path = base / str(version)
    path.mkdir(parents=True)
    if complete:
        (path / "saved_model.pb").write_bytes(b"")
    return str(path)


def test_store_baseline_is_the_newest_complete_version_or_none_on_a_first_push(tmp_path):
    from components.evaluator.baseline import find_store_baseline

    base = tmp_path / "serving" / "dcgan"
    first = find_store_baseline(str(base))
    assert first.path is None and first.reason == f"no baseline: {base} does not exist yet (first push)"
    base.mkdir(parents=True)
    (base / "notes.txt").write_text("not a version")
    assert find_store_baseline(str(base)).reason == f"no baseline: {base} holds no complete version (first push)"
    _version(base, 100)
    newest = _version(base, 200)
    _version(base, 300, complete=False)  # a push in progress: saved_model.pb is written last
    found = find_store_baseline(str(base))
    assert (found.path, found.version) == (newest, 200)
    assert found.reason == f"baseline: version 200 of {base}, the newest pushed version"


def test_store_baseline_follows_the_stable_label_of_the_model_config(tmp_path):
    from components.evaluator.baseline import find_store_baseline

    base = tmp_path / "serving" / "dcgan"
    stable = _version(base, 100)
    _version(base, 200)  # a canary, newer than what is served as stable
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "dcgan" base_path: "/models/dcgan" '
                      'model_platform: "tensorflow" model_version_policy { specific { versions: 100 versions: 200 } } '
                      'version_labels { key: "stable" value: 100 } version_labels { key: "canary" value: 200 } } }')
    found = find_store_baseline(str(base), str(config))
    assert (found.path, found.version) == (stable, 100)
    assert found.reason == f"baseline: version 100 of {base}, labelled 'stable' in {config}"
    other = tmp_path / "other.config"  # names another model only: the newest version of this one
    other.write_text('model_config_list { config { name: "faces" base_path: "/m/faces" model_platform: "tensorflow" '
                     'version_labels { key: "stable" value: 1 } } }')
    assert find_store_baseline(str(base), str(other)).version == 200
    missing = tmp_path / "missing.config"
    missing.write_text(config.read_text().replace('value: 100 }', 'value: 7 }'))
    with pytest.raises(FileNotFoundError, match="labels version 7 of model 'dcgan' 'stable'"):
        find_store_baseline(str(base), str(missing))


def test_without_a_resolver_the_evaluator_gates_on_the_version_in_the_serving_store(pipeline_runs, tmp_path):
    """The FidEvaluator as the open-source Kubeflow spec compiles it (no Resolver, `baseline_base_path`): the store
    holds run 1's pushed oracle, so the untrained candidate is compared with it — the same decision the resolver
    led to in run 2."""
    from tfx import v1 as tfx
    from tfx.orchestration import metadata
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from components.evaluator.component import FidEvaluator

    serving = pipeline_runs["serving"]
    (version,) = sorted(os.listdir(serving))
    examples = pipeline_runs["examples"]
    model = tfx.dsl.Importer(source_uri=pipeline_runs["models"]["untrained"],
                             artifact_type=tfx.types.standard_artifacts.Model).with_id("model_importer")
    data = tfx.dsl.Importer(source_uri=examples, artifact_type=tfx.types.standard_artifacts.Examples,
                            properties={"split_names": '["train", "eval"]'}).with_id("examples_importer")
    evaluator = FidEvaluator(model=model.outputs["result"], examples=data.outputs["result"],
                             baseline_base_path=str(serving), num_samples=N, fid_threshold=THRESHOLD,
                             max_fid_regression=10.0, kid_subsets=10, memorization_reference=None)
    connection = metadata.sqlite_metadata_connection_config(str(tmp_path / "mlmd.sqlite"))
    LocalDagRunner().run(tfx_pipeline.Pipeline(
        pipeline_name="fid-gate-store", pipeline_root=str(tmp_path / "pipeline"), metadata_connection_config=connection,
        components=[model, data, evaluator], enable_cache=False))

    (blessing,) = _store(connection).get_artifacts_by_type("ModelBlessing")
    props = _props(blessing)
    first = next(_props(b) for b in _store(pipeline_runs["connection"]).get_artifacts_by_type("ModelBlessing")
                 if _props(b)["blessed"] == 1)
    assert props["blessed"] == 0
    assert props["baseline_source"] == f"baseline: version {version} of {serving}, the newest pushed version"
    assert props["baseline_model"] == os.path.join(str(serving), version)
    assert props["baseline_fid"] == pytest.approx(first["fid"], rel=1e-6)
    assert "beyond the allowed regression" in props["reason"]


def test_store_baseline_reads_an_s3_serving_store(s3_env):
    """The open-source Kubeflow spec on an object-store root: the evaluator lists the versions on S3 (loopback)."""
    from components.evaluator.baseline import find_store_baseline

    bucket = s3_env.create_bucket("store-baseline")
    client = s3_env.client()
    assert find_store_baseline(f"{bucket}/serving/dcgan").path is None
    for key in ("serving/dcgan/5/saved_model.pb", "serving/dcgan/9/variables/variables.index",  # 9: incomplete
                "serving/dcgan/7/saved_model.pb"):
        client.put_object(Bucket="store-baseline", Key=key, Body=b"")
    found = find_store_baseline(f"{bucket}/serving/dcgan")
    assert found.version == 7 and found.path == f"{bucket}/serving/dcgan/7"
