"""Multi-worker training writes once: two real worker processes under MultiWorkerMirroredStrategy (TF_CONFIG with two
loopback workers) train one run through the TFX Trainer's `run_fn`; only the chief's checkpoints, TensorBoard events,
sample grids, config, metrics and export land in the run directory, the other worker's temporary copies are gone,
and the run resumes (through `dcgan train --resume`) with both workers again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, dcgan_command, free_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# One worker of the cluster: the TFX Trainer's run_fn with the FnArgs fields it reads (TFX itself is not needed to
# call it, and importing it would double the test's time), ended through fileio.exit_process as every entry point.
WORKER = """
import json, sys, types
from components.trainer_module import run_fn
from dcgan import fileio
args = json.loads(sys.argv[1])
run_fn(types.SimpleNamespace(custom_config={"train_config": args["train_config"], "directions": False},
                             train_files=[args["data"]], eval_files=[], train_steps=args["steps"],
                             model_run_dir=args["run_dir"], serving_model_dir=args["serving_model_dir"]))
fileio.exit_process(0)
"""


def _cluster(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _run_workers(argvs: list[list[str]], ports: list[int], timeout: float = 600) -> list[str]:
    """Start one process per worker (index i gets argvs[i]), wait for all; each must exit 0."""
    procs = []
    for index, argv in enumerate(argvs):
        env = {**os.environ, "PYTHONPATH": REPO, "TF_CONFIG": _cluster(ports, index), "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONUNBUFFERED": "1"}
        procs.append(subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outputs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for index, (proc, out) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"worker {index} exited {proc.returncode}:\n{out[-4000:]}"
    return outputs


def _tree(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files)


@pytest.mark.slow
def test_two_workers_train_one_run_and_only_the_chief_writes_it_then_both_resume(tmp_path, image_folder):
    from dcgan.config import ModelConfig, TrainConfig

    run_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "serving_model")
    config = TrainConfig(model=ModelConfig(size=32, ngf=8, ndf=8), data=image_folder, steps=4, batch_size=8,
                         log_every=2, sample_every=2, checkpoint_every=2, num_samples=4, ema_decay=0.9,
                         strategy="multi_worker_mirrored")
    args = {"train_config": config.to_dict(), "data": image_folder, "steps": 4, "run_dir": run_dir,
            "serving_model_dir": export_dir}
    ports = [free_port(), free_port()]
    argv = [sys.executable, "-c", WORKER, json.dumps(args)]
    _run_workers([argv, argv], ports)

    files = _tree(run_dir)
    assert not [f for f in files if "workertemp_" in f], f"a worker's temporary files were left: {files}"
    assert sorted(f for f in files if f.startswith("samples/")) == [
        "samples/step_0000000.png", "samples/step_0000002.png", "samples/step_0000004.png"], files
    assert len([f for f in files if f.startswith("logs/") and ".tfevents." in f]) == 1, files
    assert "config.json" in files and "training_summary.json" in files, files
    checkpoints = sorted(f for f in files if f.startswith("checkpoints/") and f.endswith(".index"))
    assert checkpoints == ["checkpoints/ckpt-2.index", "checkpoints/ckpt-4.index"], files
    steps = [json.loads(line)["step"] for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert steps == [1, 2, 4], f"metrics.jsonl was not written by one worker only: steps {steps}"
    assert os.path.isfile(os.path.join(export_dir, "saved_model.pb")), _tree(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["run", "serving_model"], "something was written beside the run"

    # Resume with both workers (the CLI this time): both restore the chief's checkpoint and go on to step 6.
    resume = dcgan_command() + ["train", "--resume", run_dir, "--steps", "6", "--no-progress"]
    ports = [free_port(), free_port()]
    _run_workers([resume, resume], ports)
    files = _tree(run_dir)
    assert not [f for f in files if "workertemp_" in f], f"a worker's temporary files were left: {files}"
    import tensorflow as tf

    assert tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")).endswith("ckpt-6")
    steps = [json.loads(line)["step"] for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    assert steps == [1, 2, 4, 5, 6], f"the resumed run did not continue once from step 4: steps {steps}"
    assert "samples/step_0000006.png" in files, files
