"""The pipeline image and the compiled Kubeflow spec, for real: the image built here (`scripts/build_image.sh`), its
entrypoints, tensorflow-io's s3:// from inside a container against the loopback S3 server, and the smoke preset's
compiled PipelineJob executed task by task in the image (`pipeline.kubeflow_local`) to a pushed model.

Run by `make test-kubeflow`, which builds the image and passes it in DCGAN_PIPELINE_IMAGE; skipped elsewhere (plain
`make test` has no container engine to rely on). Containers run with `--network host`: they reach the loopback S3
server at 127.0.0.1. What no machine here has is a Kubernetes API server and a Kubeflow backend: the backend's
driver/launcher is played by `pipeline.kubeflow_local` (see its docstring and README "Kubeflow")."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pipeline.kubeflow_entrypoint import COMMAND
from pipeline.kubeflow_local import ArtifactStore, DockerLauncher, TaskFailed, run_pipeline_job

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.environ.get("DCGAN_PIPELINE_IMAGE", "")
DOCKER = [os.path.join(REPO, "scripts", "container_engine.sh"), "docker"]

pytestmark = [
    pytest.mark.container,
    pytest.mark.skipif(not IMAGE, reason="needs the pipeline image and a container engine: `make test-kubeflow`"),
]


def docker_run(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [*DOCKER, "run", "--rm", "--network", "host"]
    for key, value in (env or {}).items():
        cmd += ["-e", f"{key}={value}"]
    return subprocess.run([*cmd, IMAGE, *args], capture_output=True, text=True, timeout=timeout)


def test_image_runs_the_cli_and_the_kubeflow_entrypoints():
    cli = docker_run("dcgan", "--help")
    assert cli.returncode == 0, cli.stderr
    assert "pipeline" in cli.stdout and "serve" in cli.stdout
    # TFX's own Kubeflow V2 entrypoint and the project's wrapper around it (what the compiled spec runs) import.
    for module in ("tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor", COMMAND[-1]):
        r = docker_run("python", "-m", module, "--help")
        assert r.returncode == 0, r.stderr[-3000:]
        assert "--executor_class_path" in r.stdout
    versions = docker_run("python", "-c", "import sys, tfx, tensorflow as tf, tensorflow_io as tfio; "
                          "print(sys.version_info[:2], tfx.__version__, tf.__version__, tfio.__version__)")
    assert versions.returncode == 0, versions.stderr[-3000:]
    assert versions.stdout.split()[-3:] == ["1.16.0", "2.16.2", "0.37.1"], versions.stdout


def test_tensorflow_io_s3_works_inside_the_image_against_the_loopback_server(s3_server):
    bucket = s3_server.create_bucket("image-s3-check")
    script = (
        "import sys, tensorflow as tf\n"
        "from dcgan import fileio\n"
        f"path = '{bucket}/from-container/hello.txt'\n"
        "fileio.ensure_filesystem(path)\n"
        "with tf.io.gfile.GFile(path, 'w') as f: f.write('written in the image')\n"
        f"print(sorted(tf.io.gfile.listdir('{bucket}/from-container')))\n"
        f"print(tf.io.gfile.GFile('{bucket}/seeded.txt').read())\n"
        "fileio.exit_process(0)\n"
    )
    s3_server.client().put_object(Bucket="image-s3-check", Key="seeded.txt", Body=b"written on the host")
    r = docker_run("python", "-c", script, env=s3_server.environment)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.splitlines()[-2:] == ["['hello.txt']", "written on the host"]
    body = s3_server.client().get_object(Bucket="image-s3-check", Key="from-container/hello.txt")["Body"].read()
    assert body == b"written in the image"


def _compile(root: str, output: str, *extra: str) -> dict:
    from dcgan.cli import main

    assert main(["pipeline", "compile", "--kubeflow", "--preset", "smoke", "--root", root, "--image", IMAGE,
                 "--output", output, *extra]) == 0
    with open(output) as f:
        return json.load(f)


def test_compiled_smoke_spec_runs_in_the_image_to_a_pushed_model_and_a_second_run_resolves_the_baseline(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(root)
    job = _compile(root, str(tmp_path / "pipeline.json"))
    store = ArtifactStore(str(tmp_path / "metadata.json"))
    launcher = DockerLauncher(docker=DOCKER, mounts=[root], log_dir=str(tmp_path / "logs"))

    runs = run_pipeline_job(job, launcher, store=store)
    order = [r.name for r in runs]
    assert set(order) == set(job["pipelineSpec"]["root"]["dag"]["tasks"])
    assert order.index("FaceExampleGen") < order.index("Trainer") < order.index("FidEvaluator") < \
        order.index("Pusher")
    assert order.index("InfraCheck") < order.index("Pusher")
    by_name = {r.name: r for r in runs}
    assert {r.name for r in runs if r.kind == "resolver"} == {
        "latest_blessed_model_resolver-model-blessing-resolver", "latest_blessed_model_resolver-model-resolver"}
    assert by_name["latest_blessed_model_resolver-model-resolver"].outputs["model"] == []  # first run: no history

    examples = by_name["FaceExampleGen"].outputs["examples"][0]
    assert json.loads(examples.metadata["split_names"]) == ["train", "eval"]
    (blessing,) = by_name["FidEvaluator"].outputs["blessing"]
    assert blessing.metadata["blessed"] == 1
    (model,) = by_name["Trainer"].outputs["model"]
    assert blessing.metadata["current_model_id"] == model.name  # ids translated to names, as the resolver needs
    (pushed,) = by_name["Pusher"].outputs["pushed_model"]
    assert pushed.metadata["pushed"] == 1
    version_dir = pushed.metadata["pushed_destination"]
    assert version_dir.startswith(os.path.join(root, "serving", "dcgan") + "/")
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))

    import tensorflow as tf

    loaded = tf.saved_model.load(version_dir)
    assert "serving_default" in loaded.signatures

    # A second run of the same spec: the resolvers now find the first run's blessed model as the baseline.
    second = {r.name: r for r in run_pipeline_job(job, launcher, store=store)}
    (baseline,) = second["latest_blessed_model_resolver-model-resolver"].outputs["model"]
    assert baseline.uri == model.uri
    (blessing2,) = second["FidEvaluator"].outputs["blessing"]
    assert blessing2.metadata["baseline_model_id"] == model.name


def test_a_failing_task_fails_the_run_with_its_log(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(root)
    job = _compile(root, str(tmp_path / "pipeline.json"), "--data", "/nonexistent/faces")
    launcher = DockerLauncher(docker=DOCKER, mounts=[root], log_dir=str(tmp_path / "logs"))
    with pytest.raises(TaskFailed, match="task FaceExampleGen: container exited with"):
        run_pipeline_job(job, launcher)


def test_compiled_smoke_spec_on_an_s3_root_runs_in_the_image_to_a_model_pushed_to_s3(tmp_path, s3_env):
    """The same spec with its pipeline root (and so every artifact and the push) on the loopback S3 server: the
    endpoint is compiled into every task's container (`--env`), the credentials come from the launcher (as a
    cluster's secret would), nothing local is mounted."""
    bucket = s3_env.create_bucket("kfp-root")
    env = s3_env.environment
    job = _compile(f"{bucket}/dcgan", str(tmp_path / "pipeline.json"), "--env",
                   f"AWS_ENDPOINT_URL={env['AWS_ENDPOINT_URL']}")
    credentials = {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"}
    launcher = DockerLauncher(docker=DOCKER, env=credentials, log_dir=str(tmp_path / "logs"))
    runs = {r.name: r for r in run_pipeline_job(job, launcher)}

    (examples,) = runs["FaceExampleGen"].outputs["examples"]
    assert examples.uri.startswith(f"{bucket}/dcgan/")
    (pushed,) = runs["Pusher"].outputs["pushed_model"]
    assert pushed.metadata["pushed"] == 1
    version_dir = pushed.metadata["pushed_destination"]
    assert version_dir.startswith(f"{bucket}/dcgan/serving/dcgan/")
    keys = [o["Key"] for o in s3_env.client().list_objects_v2(
        Bucket="kfp-root", Prefix=version_dir[len(bucket) + 1:] + "/")["Contents"]]
    assert any(k.endswith("/saved_model.pb") for k in keys), keys
