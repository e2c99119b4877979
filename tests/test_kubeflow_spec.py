"""The spec for open-source Kubeflow Pipelines is one its backend accepts, and the entrypoint takes inputs as its
driver hands them over: the compiled YAML parses strictly as a PipelineSpec (schema 2.1.0) with no resolver
executors and no deprecated `constantValue`; the check refuses what the backend refuses (the Vertex spec);
`system.Artifact`-typed (or untyped) inputs get their TFX types back from the task's inputs spec, and a real TFX
executor (the Pusher) runs through the entrypoint on such inputs. The runs in containers are in
tests/test_kubeflow_container.py (`make test-kubeflow`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from pipeline.kfp_spec import SpecError, load, open_source_problems, open_source_yaml

KFP_LOCAL_TYPE = {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"}  # what kfp.local hands over


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    from dcgan.cli import main

    folder = tmp_path_factory.mktemp("kfp-spec")
    assert main(["pipeline", "compile", "--kubeflow", "--preset", "smoke", "--root", "/pipeline-root",
                 "--image", "dcgan-faces-pipeline:test", "--output", str(folder / "pipeline.yaml")]) == 0
    assert main(["pipeline", "compile", "--kubeflow", "--target", "vertex", "--preset", "smoke", "--root",
                 "/pipeline-root", "--image", "dcgan-faces-pipeline:test", "--output",
                 str(folder / "pipeline.json")]) == 0
    with open(folder / "pipeline.yaml") as f:
        text = f.read()
    return {"text": text, "spec": load(str(folder / "pipeline.yaml")), "vertex": load(str(folder / "pipeline.json"))}


def test_the_open_source_spec_parses_strictly_as_a_pipeline_spec_the_backend_accepts(compiled):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = compiled["spec"]
    parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    assert parsed.schema_version == "2.1.0" and parsed.pipeline_info.name == "dcgan-faces"
    assert parsed.default_pipeline_root == "/pipeline-root/artifacts"
    assert open_source_problems(spec) == []
    executors = spec["deploymentSpec"]["executors"]
    assert all(set(e) == {"container"} for e in executors.values())  # no resolver, no importer
    assert "constantValue" not in compiled["text"] and "resolver" not in compiled["text"]
    for task in spec["root"]["dag"]["tasks"].values():
        for parameter in task.get("inputs", {}).get("parameters", {}).values():
            assert set(parameter) == {"runtimeValue"} and set(parameter["runtimeValue"]) == {"constant"}
    for component in spec["components"].values():
        for side in ("inputDefinitions", "outputDefinitions"):
            assert all("parameterType" in p for p in component.get(side, {}).get("parameters", {}).values())
    # every container task carries its inputs spec: the entrypoint rebuilds the TFX types from it
    for executor in executors.values():
        assert "--json_serialized_inputs_spec_args" in executor["container"]["args"]


def test_the_check_refuses_what_the_open_source_backend_refuses(compiled):
    job = compiled["vertex"]
    assert "PipelineJob" in open_source_problems(job)[0]
    problems = "\n".join(open_source_problems(job["pipelineSpec"]))
    assert "schemaVersion is '2.0.0'" in problems
    assert "executor latest_blessed_model_resolver-model-resolver_executor is a resolver executor" in problems
    assert "runtimeValue.constantValue: deprecated constantValue" in problems
    with pytest.raises(SpecError, match="resolver executor"):
        open_source_yaml(job["pipelineSpec"])
    bad = dict(compiled["spec"], pipelineInfo={"name": "DCGAN Faces"}, extra_field=1)
    problems = "\n".join(open_source_problems(bad))
    assert "does not parse as a PipelineSpec" in problems and "extra_field" in problems
    assert "pipelineInfo.name 'DCGAN Faces'" in problems


def test_compile_refuses_an_output_of_the_other_targets_format(tmp_path, capsys):
    from dcgan.cli import main

    assert main(["pipeline", "compile", "--kubeflow", "--preset", "smoke", "--output", str(tmp_path / "p.json")]) == 2
    assert "open-source Kubeflow Pipelines takes a .yaml/.yml package" in capsys.readouterr().err
    assert main(["pipeline", "compile", "--kubeflow", "--target", "vertex", "--preset", "smoke", "--output",
                 str(tmp_path / "p.yaml")]) == 2
    assert "the Vertex AI PipelineJob is JSON" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_inputs_typed_as_system_artifact_or_untyped_get_their_tfx_types_back(compiled):
    from pipeline.kubeflow_entrypoint import restore_input_types, with_restored_input_types

    args = compiled["spec"]["deploymentSpec"]["executors"]["Pusher_executor"]["container"]["args"]
    inputs_spec = json.loads(args[args.index("--json_serialized_inputs_spec_args") + 1])
    invocation = {"inputs": {"artifacts": {
        "model": {"artifacts": [{"name": "model", "uri": "/m", "type": KFP_LOCAL_TYPE}]},
        "model_blessing": {"artifacts": [{"name": "42", "uri": "/b"}]},  # the backend's driver: no type at all
        "infra_blessing": {"artifacts": [{"name": "i", "uri": "/i",
                                          "type": {"instanceSchema": "title: tfx.InfraBlessing\ntype: object\n"}}]},
    }}}
    restored = restore_input_types(invocation, inputs_spec)["inputs"]["artifacts"]
    titles = {k: yaml.safe_load(v["artifacts"][0]["type"]["instanceSchema"])["title"] for k, v in restored.items()}
    assert titles == {"model": "tfx.Model", "model_blessing": "tfx.ModelBlessing",
                      "infra_blessing": "tfx.InfraBlessing"}
    assert restored["model"]["artifacts"][0]["uri"] == "/m"  # nothing else changes
    assert invocation["inputs"]["artifacts"]["model"]["artifacts"][0]["type"] == KFP_LOCAL_TYPE  # not in place

    argv = ["--executor_class_path", "x", f"--json_serialized_invocation_args={json.dumps(invocation)}",
            "--json_serialized_inputs_spec_args", json.dumps(inputs_spec), "--runner=DirectRunner"]
    out = with_restored_input_types(argv)
    assert out[0:2] == argv[0:2] and out[3:] == argv[3:]
    assert json.loads(out[2].split("=", 1)[1])["inputs"]["artifacts"] == restored
    schema_2_0 = ["--executor_class_path", "x", "--json_serialized_invocation_args", json.dumps(invocation)]
    assert with_restored_input_types(schema_2_0) == schema_2_0  # Vertex's 2.0 tasks: TFX's types already


@pytest.mark.slow
def test_the_pusher_runs_through_the_entrypoint_on_inputs_as_kfp_local_hands_them_over(compiled, tmp_path,
                                                                                       tiny_saved_model):
    """TFX's own entrypoint cannot rebuild a `system.Artifact`; the project's entrypoint runs the Pusher's executor
    on the same inputs to a pushed version, and writes the executor output the engine reads back."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as tfx_utils

    from pipeline.kubeflow_entrypoint import COMMAND

    model_uri = str(tmp_path / "Trainer" / "model")
    shutil.copytree(tiny_saved_model, os.path.join(model_uri, "Format-Serving"))
    serving = tmp_path / "serving" / "dcgan"

    def blessing(key: str) -> dict:
        return {"artifacts": [{"name": key, "uri": str(tmp_path / key), "type": KFP_LOCAL_TYPE,
                               "metadata": {"blessed": 1}}]}

    executor_input = {
        "inputs": {"artifacts": {"model": {"artifacts": [{"name": "model", "uri": model_uri, "type": KFP_LOCAL_TYPE}]},
                                 "model_blessing": blessing("blessing"), "infra_blessing": blessing("infra")},
                   "parameterValues": {"custom_config": "null", "push_destination": json.dumps(
                       {"filesystem": {"base_directory": str(serving)}})}},
        "outputs": {"artifacts": {"pushed_model": {"artifacts": [{
            "name": "pushed_model", "uri": str(tmp_path / "Pusher" / "pushed_model"),
            "type": {"instanceSchema": "title: tfx.PushedModel\ntype: object\n"}}]}},
            "outputFile": str(tmp_path / "Pusher" / "executor_output.json")},
    }
    container = compiled["spec"]["deploymentSpec"]["executors"]["Pusher_executor"]["container"]
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]

    with pytest.raises(ImportError, match="system.Artifact"):  # the gap the entrypoint closes
        tfx_utils.parse_raw_artifact_dict(_artifact_lists(executor_input["inputs"]["artifacts"]))
    r = subprocess.run([sys.executable, *COMMAND[1:], *args], cwd=REPO, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    with open(tmp_path / "Pusher" / "executor_output.json") as f:
        output = json.load(f)
    (pushed,) = output["artifacts"]["pushed_model"]["artifacts"]
    assert pushed["metadata"]["pushed"] == 1
    (version,) = os.listdir(serving)
    assert pushed["metadata"]["pushed_destination"] == str(serving / version)
    assert os.path.isfile(serving / version / "saved_model.pb")


def _artifact_lists(artifacts: dict) -> dict:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    return {k: json_format.ParseDict(v, pipeline_spec_pb2.ArtifactList()) for k, v in artifacts.items()}


def test_the_trainer_task_is_retried_in_both_specs_and_the_retry_policy_parses(compiled, tmp_path, capsys):
    """A preempted Trainer attempt fails after its checkpoint (tests/test_pipeline_interrupt.py); the retry policy
    makes the backend run it again, and the retry resumes the parked run. Only the Trainer: a retried ingest or
    evaluation would start over anyway, and their failures are usually not transient."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    from dcgan.cli import main

    for spec in (compiled["spec"], compiled["vertex"]["pipelineSpec"]):
        parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
        retried = {name: task.retry_policy.max_retry_count for name, task in parsed.root.dag.tasks.items()
                   if task.HasField("retry_policy")}
        assert retried == {"Trainer": 2}
        policy = parsed.root.dag.tasks["Trainer"].retry_policy
        assert policy.backoff_duration.seconds == 30 and policy.backoff_max_duration.seconds == 300
    quick = str(tmp_path / "quick-retry.yaml")
    assert main(["pipeline", "compile", "--kubeflow", "--preset", "smoke", "--root", "/pipeline-root", "--set",
                 "kubeflow_trainer_retry_backoff_seconds=2", "--output", quick]) == 0
    with open(quick) as f:
        assert yaml.safe_load(f)["root"]["dag"]["tasks"]["Trainer"]["retryPolicy"]["backoffDuration"] == "2s"
    assert main(["pipeline", "compile", "--kubeflow", "--preset", "smoke", "--root", "/pipeline-root", "--set",
                 "kubeflow_trainer_retry_backoff_seconds=-1", "--output", quick]) != 0
    assert "kubeflow_trainer_retry_backoff_seconds must be ≥ 0" in capsys.readouterr().err
    off = str(tmp_path / "pipeline.yaml")
    assert main(["pipeline", "compile", "--kubeflow", "--preset", "smoke", "--root", "/pipeline-root", "--set",
                 "kubeflow_trainer_retries=0", "--output", off]) == 0
    assert "retryPolicy" not in open(off).read()
