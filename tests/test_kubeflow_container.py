"""The pipeline image and the compiled Kubeflow specs, for real: the image built here (`scripts/build_image.sh`), its
entrypoints, tensorflow-io's s3:// from inside a container against the loopback S3 server, the open-source Kubeflow
Pipelines spec executed by Kubeflow's own local engine (`kfp.local`'s DockerRunner, `pipeline.kfp_local`) to a
pushed model, twice, and the Vertex AI spec on an S3 root (resolver tasks, object-store root: what kfp.local cannot
do, played by `pipeline.kubeflow_local`).

Run by `make test-kubeflow`, which builds the image and passes it in DCGAN_PIPELINE_IMAGE and kfp.local's venv in
DCGAN_KFP_PYTHON; skipped elsewhere (plain `make test` has no container engine to rely on). Containers run with
`--network host`: they reach the loopback S3 server at 127.0.0.1. What no machine here has is a Kubernetes API
server and a Kubeflow backend."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from pipeline.kubeflow_entrypoint import COMMAND
from pipeline.kubeflow_local import ArtifactStore, DockerLauncher, run_pipeline_job

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.environ.get("DCGAN_PIPELINE_IMAGE", "")
KFP_PYTHON = os.environ.get("DCGAN_KFP_PYTHON", "")
DOCKER = [os.path.join(REPO, "scripts", "container_engine.sh"), "docker"]
DOCKER_HOST = "unix://" + os.environ.get("DCGAN_DOCKER_STATE", "/run/dcgan-docker") + "/docker.sock"

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
    from pipeline.kfp_spec import load

    assert main(["pipeline", "compile", "--kubeflow", "--preset", "smoke", "--root", root, "--image", IMAGE,
                 "--output", output, *extra]) == 0
    return load(output)


def _kfp_local(spec: str, pipeline_root: str, out_json: str) -> tuple[subprocess.CompletedProcess, dict]:
    """`python -m pipeline.kfp_local` in kfp.local's own venv (kfp 2.17; the legacy stack pins kfp 2.5.0)."""
    assert KFP_PYTHON, "DCGAN_KFP_PYTHON (scripts/kfp_local_env.sh) is not set"
    r = subprocess.run([KFP_PYTHON, "-m", "pipeline.kfp_local", spec, "--pipeline-root", pipeline_root,
                        "--json", out_json], cwd=REPO, capture_output=True, text=True, timeout=1500,
                       env={**os.environ, "DOCKER_HOST": DOCKER_HOST})
    outputs = {}
    if os.path.isfile(out_json):
        with open(out_json) as f:
            outputs = json.load(f)
    return r, outputs


def _artifact(outputs: dict, task: str, key: str) -> dict:
    (artifact,) = outputs[task]["artifacts"][key]["artifacts"]
    return artifact


def test_open_source_spec_runs_in_kfp_local_to_a_served_model_and_a_second_run_gates_on_the_first(tmp_path):
    """The spec for open-source Kubeflow Pipelines (no resolver tasks), executed by kfp.local's DockerRunner: the
    first run has no baseline and pushes a model that the model server answers; the second run's FidEvaluator
    finds that model in the serving store and evaluates it as its baseline on the same images and seeds.

    Preemption: the first run's Trainer container gets SIGTERM mid-training; the task fails after parking its run,
    and kfp.local runs it again as the spec's retry policy says (kfp >= 2.17 honours retryPolicy); the retry resumes
    from the checkpoint and exports a model with every step."""
    root = str(tmp_path / "root")
    os.makedirs(root)
    spec_path = str(tmp_path / "pipeline.yaml")
    steps = 1500
    # the retry waits 2 s instead of a preempted node's 30 (the back-off itself is kfp.local's, not under test)
    spec = _compile(root, spec_path, "--set", f"train.steps={steps}", "--set", "train.log_every=50",
                    "--set", "train.checkpoint_every=250", "--set", "train.sample_every=1000",
                    "--set", "kubeflow_trainer_retry_backoff_seconds=2")
    assert spec["schemaVersion"] == "2.1.0" and "resolver" not in json.dumps(spec["deploymentSpec"])
    assert spec["root"]["dag"]["tasks"]["Trainer"]["retryPolicy"]["maxRetryCount"] == 2

    watcher = _sigterm_container_when_it_logs(f"step 300/{steps}", root)
    first, out1 = _kfp_local(spec_path, root, str(tmp_path / "run1.json"))
    watcher.join(5)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert set(out1) == {"FaceExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "Trainer",
                         "FidEvaluator", "InfraCheck", "Pusher"}
    # the data validation ran in the image, on the curated avatars schema it carries (/app/pipeline/schemas)
    anomalies_uri = _artifact(out1, "ExampleValidator", "anomalies")["uri"]
    with open(os.path.join(anomalies_uri, "anomalies.txt")) as f:
        assert "no anomalies" in f.read().lower()
    assert os.path.isfile(os.path.join(anomalies_uri, "statistics.png"))
    logs = first.stdout + first.stderr
    stopped = re.search(r"Trainer stopped by SIGTERM at step (\d+) of " + str(steps), logs)
    assert stopped, "the Trainer container was not preempted: " + logs[-4000:]
    assert f"resuming the run interrupted at step {stopped.group(1)}" in logs
    model_uri = _artifact(out1, "Trainer", "model")["uri"]
    with open(os.path.join(model_uri, "Format-Serving", "assets.extra", "training_summary.json")) as f:
        summary = json.load(f)
    assert summary["steps"] == steps and summary["resumed_from_step"] == int(stopped.group(1))
    blessing1 = _artifact(out1, "FidEvaluator", "blessing")["metadata"]
    assert blessing1["blessed"] == 1
    assert blessing1["baseline_source"].startswith("no baseline:") and "baseline_fid" not in blessing1
    assert "FidEvaluator: no baseline:" in first.stdout + first.stderr
    pushed1 = _artifact(out1, "Pusher", "pushed_model")["metadata"]
    assert pushed1["pushed"] == 1
    version_dir = pushed1["pushed_destination"]
    assert version_dir.startswith(os.path.join(root, "serving", "dcgan") + "/")

    # The pushed model answers: the same checks the pipeline's InfraCheck runs, from the host this time.
    from serving.model_server.infra import load_and_query

    report = load_and_query(version_dir, timeout_s=240)
    assert {"serving_default", "generate"} <= set(report["signatures"]), report

    # The second run trains 300 steps (the first's 1,500 are for the preemption above): a model that the smoke
    # preset's lenient gate still blesses, compiled into a second spec of the same pipeline and root.
    second_spec = str(tmp_path / "pipeline-300.yaml")
    _compile(root, second_spec, "--set", "train.steps=300", "--set", "train.log_every=50",
             "--set", "kubeflow_trainer_retry_backoff_seconds=2")
    second, out2 = _kfp_local(second_spec, root, str(tmp_path / "run2.json"))
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    blessing2 = _artifact(out2, "FidEvaluator", "blessing")["metadata"]
    version = os.path.basename(version_dir)
    assert blessing2["baseline_source"] == (f"baseline: version {version} of {root}/serving/dcgan, the newest "
                                            "pushed version")
    assert blessing2["baseline_model"] == version_dir
    # the first run's model, scored again as the baseline: same images, same seeds, same FID
    assert blessing2["baseline_fid"] == pytest.approx(blessing1["fid"], rel=1e-6)
    assert f"FidEvaluator: baseline: version {version} of" in second.stdout + second.stderr
    pushed2 = _artifact(out2, "Pusher", "pushed_model")["metadata"]
    assert pushed2["pushed"] == 1 and pushed2["pushed_destination"] != version_dir


def test_the_kfp_client_reads_the_package_as_the_readme_uploads_it(tmp_path):
    """`kfp.Client().create_run_from_pipeline_package("pipeline.yaml")` (README) first reads the package with the
    client's own loader (kfp 2.17.3 here): `.yaml` accepted, the document parsed as a PipelineSpec. The HTTP call
    after it needs a KFP API server, which no machine here has. The Vertex file is refused by the same loader."""
    root = str(tmp_path / "root")
    spec_path = str(tmp_path / "pipeline.yaml")
    _compile(root, spec_path)
    job_path = str(tmp_path / "pipeline.json")
    _compile(root, job_path, "--target", "vertex")
    script = ("import sys\nfrom kfp.client.client import _extract_pipeline_yaml\n"
              "doc = _extract_pipeline_yaml(sys.argv[1])\n"
              "print(doc.pipeline_spec.pipeline_info.name, doc.pipeline_spec.schema_version, "
              "len(doc.pipeline_spec.root.dag.tasks))\n")
    r = subprocess.run([KFP_PYTHON, "-c", script, spec_path], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["dcgan-faces", "2.1.0", "8"]  # FaceExampleGen, the 3 validation tasks, 4 more
    refused = subprocess.run([KFP_PYTHON, "-c", script, job_path], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "should end with one of the following formats" in refused.stderr


def test_a_failing_task_fails_the_kfp_local_run_naming_the_task(tmp_path):
    root = str(tmp_path / "root")
    os.makedirs(root)
    spec_path = str(tmp_path / "pipeline.yaml")
    _compile(root, spec_path, "--data", "/nonexistent/faces")
    r, outputs = _kfp_local(spec_path, root, str(tmp_path / "run.json"))
    assert r.returncode == 1
    assert "FaceExampleGen" in r.stderr and "/nonexistent/faces" in r.stdout + r.stderr
    assert not os.path.exists(str(tmp_path / "run.json"))


def _sigterm_once(find: Callable[[], list[str]], timeout: float = 900) -> threading.Thread:
    """A thread that polls `find` (the containers to stop: names or ids, [] until then) and sends each of them SIGTERM
    (what a node drain or a preemption does to a pod), once."""
    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            containers = find()
            for container in containers:
                subprocess.run([*DOCKER, "kill", "--signal", "TERM", container], capture_output=True)
            if containers:
                return
            time.sleep(0.5)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _sigterm_container_when_it_logs(text: str, root: str) -> threading.Thread:
    """SIGTERM to the running container of the image that works under the pipeline root `root` and has logged `text`.
    kfp.local names its containers at random, so the container is found by its image, by the root it mounts and is
    handed in its executor input (the Vertex test beside this one runs the same image and logs the same steps: CI
    once signalled its Trainer from here), and by its logs."""
    def find() -> list[str]:
        ids = subprocess.run([*DOCKER, "ps", "-q", "--filter", f"ancestor={IMAGE}"], capture_output=True,
                             text=True).stdout.split()
        ours = [i for i in ids if root in subprocess.run(
            [*DOCKER, "inspect", "--format", "{{json .Mounts}} {{json .Args}}", i], capture_output=True,
            text=True).stdout]
        logs = {i: subprocess.run([*DOCKER, "logs", i], capture_output=True, text=True, errors="replace") for i in ours}
        return [i for i, out in logs.items() if text in out.stdout + out.stderr]

    return _sigterm_once(find)


def _sigterm_when_logged(log_path: str, container_prefix: str, text: str) -> threading.Thread:
    """SIGTERM to the running containers whose names start with `container_prefix`, once `log_path` contains `text`
    (`pipeline.kubeflow_local` names its containers and writes each task's log)."""
    def find() -> list[str]:
        if not (os.path.exists(log_path) and text in open(log_path, errors="replace").read()):
            return []
        names = subprocess.run([*DOCKER, "ps", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
        return [n for n in names.split() if n.startswith(container_prefix)]

    return _sigterm_once(find)


def test_vertex_spec_on_an_s3_root_runs_to_a_model_pushed_to_s3_and_a_second_run_resolves_the_baseline(
        tmp_path, s3_env):
    """The Vertex AI PipelineJob with its pipeline root (and so every artifact and the push) on the loopback S3
    server: the endpoint is compiled into every task's container (`--env`), the credentials come from the launcher
    (as a cluster's secret would), nothing local is mounted. Its latest-blessed-model resolver tasks (which Vertex
    runs and kfp.local does not) find the first run's blessed model in the second run.

    Preemption: the first run's Trainer container gets SIGTERM mid-training; the task exits 143 after parking its run
    on S3, and its retry (the same executor input, as a retry policy runs it) resumes from that checkpoint and
    exports a model with every step (`pipeline.kubeflow_local` retries as the spec's retry policy says)."""
    bucket = s3_env.create_bucket("kfp-root")
    env = s3_env.environment
    steps = 1500
    # Attribute directions off: the kfp.local test computes them in the image's Trainer; here they would add ~10 s
    # to each of three Trainer containers and check nothing more.
    root = f"{bucket}/dcgan"
    vertex = ["--target", "vertex", "--env", f"AWS_ENDPOINT_URL={env['AWS_ENDPOINT_URL']}",
              "--set", "train.log_every=50", "--set", "directions.enabled=false"]
    job = _compile(root, str(tmp_path / "pipeline.json"), *vertex, "--set", f"train.steps={steps}",
                   "--set", "train.checkpoint_every=250", "--set", "train.sample_every=1000")
    credentials = {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"}
    launcher = DockerLauncher(docker=DOCKER, env=credentials, log_dir=str(tmp_path / "logs"))
    store = ArtifactStore(str(tmp_path / "metadata.json"))
    trainer_log = str(tmp_path / "logs" / "Trainer.log")
    watcher = _sigterm_when_logged(trainer_log, "dcgan-kfp-trainer-", f"step 300/{steps}")
    runs = {r.name: r for r in run_pipeline_job(job, launcher, store=store, retries=1)}
    watcher.join(5)
    with open(trainer_log) as f:
        attempts = f.read().split("\n$ ")
    assert len(attempts) == 2, "the Trainer task was not preempted and retried"
    stopped = re.search(r"Trainer stopped by SIGTERM at step (\d+) of " + str(steps), attempts[0])
    assert stopped and "Traceback" not in attempts[0][attempts[0].find("Trainer stopped"):], attempts[0][-3000:]
    assert f"resuming the run interrupted at step {stopped.group(1)}" in attempts[1], attempts[1][-3000:]

    assert runs["latest_blessed_model_resolver-model-resolver"].outputs["model"] == []  # first run: no history
    (examples,) = runs["FaceExampleGen"].outputs["examples"]
    assert examples.uri.startswith(f"{bucket}/dcgan/")
    assert json.loads(examples.metadata["split_names"]) == ["train", "eval", "inputs"]
    (model,) = runs["Trainer"].outputs["model"]
    summary = s3_env.client().get_object(Bucket="kfp-root", Key=model.uri[len(bucket) + 1:].rstrip("/")
                                         + "/Format-Serving/assets.extra/training_summary.json")["Body"].read()
    summary = json.loads(summary)
    assert summary["steps"] == steps and summary["resumed_from_step"] == int(stopped.group(1))
    (blessing,) = runs["FidEvaluator"].outputs["blessing"]
    assert blessing.metadata["blessed"] == 1
    assert blessing.metadata["current_model_id"] == model.name  # ids translated to names, as the resolver needs
    (pushed,) = runs["Pusher"].outputs["pushed_model"]
    assert pushed.metadata["pushed"] == 1
    version_dir = pushed.metadata["pushed_destination"]
    assert version_dir.startswith(f"{bucket}/dcgan/serving/dcgan/")
    keys = [o["Key"] for o in s3_env.client().list_objects_v2(
        Bucket="kfp-root", Prefix=version_dir[len(bucket) + 1:] + "/")["Contents"]]
    assert any(k.endswith("/saved_model.pb") for k in keys), keys

    # The second run: 300 steps (a second job of the same pipeline and root); what it checks is the resolver's pick.
    second_job = _compile(root, str(tmp_path / "pipeline-300.json"), *vertex, "--set", "train.steps=300")
    second = {r.name: r for r in run_pipeline_job(second_job, launcher, store=store)}
    (baseline,) = second["latest_blessed_model_resolver-model-resolver"].outputs["model"]
    assert baseline.uri == model.uri
    (blessing2,) = second["FidEvaluator"].outputs["blessing"]
    assert blessing2.metadata["baseline_model_id"] == model.name
    assert blessing2.metadata["baseline_fid"] == pytest.approx(blessing.metadata["fid"], rel=1e-6)
