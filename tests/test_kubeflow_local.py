"""The compiled Vertex AI spec's shape and the local backend's spec handling (no container engine needed): every TFX
task runs the project's entrypoint, every artifact type in the spec can be rebuilt by it, tasks run in dependency
order, executor inputs come from the spec, resolver filters select what a backend's ML Metadata query would.
The container runs themselves are in tests/test_kubeflow_container.py (`make test-kubeflow`)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from pipeline.kubeflow_entrypoint import ARTIFACT_CLASSES, COMMAND
from pipeline.kubeflow_local import (
    Artifact,
    ArtifactStore,
    SpecError,
    TaskFailed,
    fill_placeholders,
    run_pipeline_job,
    task_order,
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    from dcgan.cli import main

    out = tmp_path_factory.mktemp("kfp") / "pipeline.json"
    assert main(["pipeline", "compile", "--kubeflow", "--target", "vertex", "--preset", "smoke", "--root",
                 "/pipeline-root",
                 "--image", "dcgan-faces-pipeline:test", "--env", "AWS_ENDPOINT_URL=http://minio.kubeflow:9000",
                 "--output", str(out)]) == 0
    with open(out) as f:
        return json.load(f)


def test_every_container_task_runs_the_project_entrypoint_which_knows_every_artifact_type(compiled):
    """Every task also gets the environment given at compile time (`--env`)."""
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.utils import import_utils

    spec = compiled["pipelineSpec"]
    containers = [e["container"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e]
    # FaceExampleGen, StatisticsGen, ImportSchemaGen, ExampleValidator, Trainer, FidEvaluator, InfraCheck, Pusher
    assert len(containers) == 8
    assert all(c["command"] == COMMAND for c in containers)
    assert all("{{$}}" in c["args"] for c in containers)
    assert all(c["env"] == [{"name": "AWS_ENDPOINT_URL", "value": "http://minio.kubeflow:9000"}] for c in containers)
    titles = set()
    for component in spec["components"].values():
        for side in ("inputDefinitions", "outputDefinitions"):
            for a in component.get(side, {}).get("artifacts", {}).values():
                titles.add(yaml.safe_load(a["artifactType"]["instanceSchema"])["title"])
    custom = titles - set(compiler_utils.TITLE_TO_CLASS_PATH)
    assert custom == set(ARTIFACT_CLASSES)  # the entrypoint maps exactly the spec's custom types
    for title in custom:
        assert import_utils.import_class_by_path(ARTIFACT_CLASSES[title]).TYPE_NAME == title


def test_tasks_run_in_dependency_order_and_a_cycle_is_refused(compiled):
    tasks = compiled["pipelineSpec"]["root"]["dag"]["tasks"]
    order = task_order(tasks)
    assert sorted(order) == sorted(tasks)
    for name, task in tasks.items():
        for dep in task.get("dependentTasks", []):
            assert order.index(dep) < order.index(name)
        for a in task.get("inputs", {}).get("artifacts", {}).values():
            assert order.index(a["taskOutputArtifact"]["producerTask"]) < order.index(name)
    with pytest.raises(SpecError, match="cycle"):
        task_order({"a": {"dependentTasks": ["b"]}, "b": {"dependentTasks": ["a"]}})
    with pytest.raises(SpecError, match="unknown task"):
        task_order({"a": {"dependentTasks": ["ghost"]}})


def test_executor_inputs_come_from_the_spec_and_a_failed_task_stops_the_run(compiled, tmp_path):
    """The container engine is replaced by a recorder here (the real runs are the container tests)."""
    seen: list[tuple[str, list[str]]] = []

    def launcher(image: str, command: list[str], task: str, env: dict[str, str]) -> None:
        assert image == "dcgan-faces-pipeline:test" and env == {"AWS_ENDPOINT_URL": "http://minio.kubeflow:9000"}
        seen.append((task, command))
        if task == "InfraCheck":
            raise TaskFailed("task InfraCheck: container exited with 1")

    job = dict(compiled, runtimeConfig={"gcsOutputDirectory": str(tmp_path)})
    with pytest.raises(TaskFailed, match="InfraCheck"):
        run_pipeline_job(job, launcher, job_id="job-1", log=lambda m: None)
    ran = [t for t, _ in seen]
    assert ran[0] == "FaceExampleGen" and ran[-2:] == ["Trainer", "InfraCheck"], ran
    assert set(ran) == {"FaceExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "Trainer",
                        "InfraCheck"}, "the data validation runs before the Trainer"
    trainer = ran.index("Trainer") + 1  # the local backend numbers the tasks in the order they run
    task, command = seen[trainer - 1]
    assert command[:3] == COMMAND
    executor_input = json.loads(command[command.index("--json_serialized_invocation_args") + 1])
    assert executor_input["inputs"]["parameters"]["run_fn"] == {"stringValue": "components.trainer_module.run_fn"}
    (examples,) = executor_input["inputs"]["artifacts"]["examples"]["artifacts"]
    assert examples["uri"] == f"{tmp_path}/job-1/FaceExampleGen_1/examples"
    assert yaml.safe_load(examples["type"]["instanceSchema"])["title"] == "tfx.Examples"
    assert executor_input["outputs"]["artifacts"]["model"]["artifacts"][0]["uri"] == \
        f"{tmp_path}/job-1/Trainer_{trainer}/model"
    assert executor_input["outputs"]["outputFile"] == f"{tmp_path}/job-1/Trainer_{trainer}/executor_output.json"


def test_resolver_filters_select_the_newest_live_match():
    store = ArtifactStore()
    blessing = "title: tfx.ModelBlessing\ntype: object\n"
    model = "title: tfx.Model\ntype: object\n"
    store.add(Artifact("m1", model, "/m1", {}, 1.0))
    store.add(Artifact("m2", model, "/m2", {}, 2.0))
    store.add(Artifact("b1", blessing, "/b1", {"blessed": 1.0, "current_model_id": "m1"}, 3.0))
    store.add(Artifact("b2", blessing, "/b2", {"blessed": 0.0, "current_model_id": "m2"}, 4.0))
    blessed = 'schema_title="tfx.ModelBlessing" AND state=LIVE AND metadata.blessed.number_value=1'
    assert [a.name for a in store.query(blessed)] == ["b1"]
    by_name = ('schema_title="tfx.Model" AND state=LIVE AND '
               'name="{{$.inputs.artifacts[\'input\'].metadata[\'current_model_id\']}}"')
    executor_input = {"inputs": {"artifacts": {"input": {"artifacts": [store.query(blessed)[0].runtime_artifact()]}}}}
    assert [a.name for a in store.query(fill_placeholders(by_name, executor_input))] == ["m1"]
    with pytest.raises(SpecError, match="not supported"):
        store.query("create_time_since_epoch>5")
    with pytest.raises(SpecError, match="not supported"):
        fill_placeholders("{{$.pipeline_job_name}}", executor_input)


def test_compile_refuses_an_env_without_a_value(tmp_path, capsys):
    from dcgan.cli import main

    assert main(["pipeline", "compile", "--kubeflow", "--preset", "smoke", "--env", "AWS_ENDPOINT_URL",
                 "--output", str(tmp_path / "p.json")]) == 2
    assert "--env 'AWS_ENDPOINT_URL' is not NAME=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_the_open_source_spec_is_sent_to_kfp_local(tmp_path):
    with pytest.raises(SpecError, match="python -m pipeline.kfp_local"):
        run_pipeline_job({"pipelineInfo": {"name": "dcgan-faces"}, "root": {}}, lambda *a: None)


def test_a_task_imports_tfx_entrypoint_without_every_tfx_component_or_the_kfp_client():
    """What every container task imports (pipeline.kubeflow_entrypoint's light start), in a fresh interpreter: TFX's
    entrypoint and one executor, without the other TFX components' heavy packages or KFP's client; the package's own
    names still load on first use, and a `_KFP_RUNTIME` the user set wins."""
    import subprocess
    import sys

    from conftest import REPO

    probe = """
import importlib, os, sys
from pipeline import kubeflow_entrypoint as e
e.light_start()
tfx_entrypoint = importlib.import_module(e.TFX_ENTRYPOINT)
e._prepare_tfx(tfx_entrypoint)
from tfx.components.statistics_gen import executor
before = {m: m in sys.modules for m in ("tensorflow_transform", "kfp.client", "tfx.components.transform.component")}
import tfx.components
from tfx.components import Trainer
print(before, os.environ["_KFP_RUNTIME"], Trainer.__module__, tfx.components.Pusher.__name__,
      "Trainer" in tfx.components.__all__)
"""
    env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[0] == ("{'tensorflow_transform': False, 'kfp.client': False, "
                                         "'tfx.components.transform.component': False} true "
                                         "tfx.components.trainer.component Pusher True")
    user_set = ("import os; from pipeline import kubeflow_entrypoint as e; e.light_start(); "
                "print(os.environ['_KFP_RUNTIME'])")
    out = subprocess.run([sys.executable, "-c", user_set], cwd=REPO, env={**env, "_KFP_RUNTIME": "false"},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout == "false\n", out.stderr[-3000:]
