"""Run the compiled open-source Kubeflow Pipelines spec (`dcgan pipeline compile --kubeflow --target kfp`) on this
machine with `kfp.local`'s DockerRunner — Kubeflow's own local engine: it reads the PipelineSpec, orders the DAG,
builds each task's executor input, fills the placeholders, runs each container task in its image with the pipeline
root mounted at the same path, and hands outputs on to the tasks that consume them.

    .venv-kfp/bin/python -m pipeline.kfp_local pipeline.yaml --pipeline-root /abs/dir [--env NAME=VALUE ...]

It needs kfp >= 2.7 (pipeline runs and input artifacts in local mode) and the Docker SDK: `.venv-kfp`, made by
`scripts/kfp_local_env.sh` from `requirements-kfp-local.lock` — a venv of its own, because the legacy stack's TFX
1.16 pins kfp 2.5.0, whose kfp.local runs neither. Nothing here imports TFX or the project's other packages.
Containers run with `--network host` (loopback only, as everything here); `DOCKER_HOST` selects the engine.

What kfp.local does not do, and the cluster does: its pipeline root is a local folder (so an object-store root is
exercised by `pipeline.kubeflow_local` instead), it keeps no ML Metadata between runs and caches nothing unless
asked, and it schedules no pods.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

EXECUTOR_OUTPUT = "executor_output.json"


def run(spec_path: str, pipeline_root: str, env: dict[str, str] | None = None,
        network_mode: str = "host") -> dict[str, dict[str, Any]]:
    """Execute the PipelineSpec at `spec_path` with kfp.local's DockerRunner under `pipeline_root` (an absolute local
    folder, mounted into every container at the same path). `env`: variables for every container, on top of the
    spec's own (e.g. credentials). Returns {task name: its ExecutorOutput as a dict} of this run; raises
    RuntimeError naming the failed task when one fails."""
    from kfp import components, local

    if not os.path.isabs(pipeline_root):
        raise ValueError(f"pipeline_root {pipeline_root!r} must be an absolute path (it is mounted into the "
                         "containers at the same path)")
    os.makedirs(pipeline_root, exist_ok=True)
    run_args: dict[str, Any] = {"network_mode": network_mode}
    if env:
        run_args["environment"] = dict(env)
    local.init(runner=local.DockerRunner(**run_args), pipeline_root=pipeline_root, raise_on_error=True)
    pipeline = components.load_component_from_file(spec_path)
    before = set(os.listdir(pipeline_root))
    pipeline()
    # kfp.local names the run folder <pipeline name>-<timestamp>; tasks may write elsewhere under the root too (the
    # Pusher's serving store, when it is inside the root).
    created = sorted(n for n in set(os.listdir(pipeline_root)) - before if n.startswith(pipeline.name + "-"))
    if len(created) != 1:
        raise RuntimeError(f"expected one new run folder {pipeline.name}-* under {pipeline_root}, found {created}")
    run_dir = os.path.join(pipeline_root, created[0])
    outputs = {}
    for task in sorted(os.listdir(run_dir)):
        path = os.path.join(run_dir, task, EXECUTOR_OUTPUT)
        if os.path.isfile(path):
            with open(path) as f:
                outputs[task] = json.load(f)
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.kfp_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="the PipelineSpec YAML (dcgan pipeline compile --kubeflow --target kfp)")
    parser.add_argument("--pipeline-root", required=True, help="absolute local folder for the run's artifacts")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment variable for every container (repeatable)")
    parser.add_argument("--json", help="write {task: executor output} of the run here")
    args = parser.parse_args(argv)
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--env {item!r} is not NAME=VALUE")
        env[name] = value
    started = time.time()
    try:
        outputs = run(args.spec, os.path.abspath(args.pipeline_root), env)
    except RuntimeError as e:
        print(f"kfp_local: {e}", file=sys.stderr)
        return 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(outputs, f, indent=2, sort_keys=True)
    print(f"kfp_local: {len(outputs)} tasks finished in {time.time() - started:.0f} s: {', '.join(outputs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
