"""Execute the compiled Vertex AI PipelineJob (`dcgan pipeline compile --kubeflow --target vertex`) on this machine,
task by task, in the pipeline image — what Vertex AI Pipelines' backend does with it, minus the cloud.

    python -m pipeline.kubeflow_local pipeline.json [--env AWS_ENDPOINT_URL ...]

The open-source Kubeflow Pipelines spec (`--target kfp`) is executed by Kubeflow's own local engine instead,
`kfp.local` (`pipeline.kfp_local`). This module is kept only for what kfp.local cannot do:
  * resolver tasks — the Vertex spec's latest-blessed-model Resolver compiles to `resolver` executors with ML Metadata
    queries; kfp.local (like the open-source backend) runs container and importer executors only, and keeps no
    metadata between runs for a query to find;
  * object-store pipeline roots — kfp.local's pipeline root is a local folder mounted into every container, so a
    `gs://` or `s3://` root, where every artifact and the push live on the store and nothing is mounted, cannot be
    run with it.

So this module plays the backend's driver and launcher, with nothing written per component — everything comes from
the spec:
  * tasks run in topological order of `root.dag.tasks` (`dependentTasks` and the producers of input artifacts);
  * a container task runs with the spec's `env` (plus variables given to the launcher, e.g. credentials);
  * a container task's executor input is built as the driver builds it: input parameters from the task's
    `runtimeValue.constantValue` (TFX compiles old-style `Value`s, which TFX's entrypoint reads from
    `inputs.parameters`), input artifacts from the producing tasks' recorded outputs (name, type schema, URI,
    metadata), one output artifact per `outputDefinitions.artifacts` key under
    `<pipeline root>/<job id>/<task>_<id>/<key>`, and `outputs.outputFile` beside them; the container command's
    placeholders (`{{$}}` and `{{$.inputs...}}`/`{{$.outputs...}}`) are filled in, and the container runs with the
    image, command and arguments of `deploymentSpec.executors`;
  * after a task, the executor output file (`ExecutorOutput` JSON: artifact URIs and metadata the executor set, e.g.
    a ModelBlessing's `blessed`) updates the recorded artifacts, as the launcher publishes them to ML Metadata;
  * resolver tasks (`deploymentSpec.executors[..].resolver.outputArtifactQueries`, what TFX compiles
    `LatestBlessedModelStrategy` into, run by Vertex's backend) evaluate their filter over the artifacts recorded so
    far (the newest match; none on a first run); importer tasks record the artifact they name.
The artifacts recorded by a run can be kept in a JSON file (`state`) so that a later run's resolvers see them.
Caching (`cachingOptions`) is not emulated: every task executes.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml


class SpecError(ValueError):
    """The PipelineJob uses something this runner (and so possibly a real backend) cannot execute."""


class TaskFailed(RuntimeError):
    """A task's container exited with an error."""


@dataclasses.dataclass
class Artifact:
    """One artifact as the backend's metadata store records it (a `RuntimeArtifact` plus bookkeeping)."""

    name: str
    instance_schema: str
    uri: str
    metadata: dict[str, Any]
    created: float
    state: str = "LIVE"

    @property
    def schema_title(self) -> str:
        return str((yaml.safe_load(self.instance_schema) or {}).get("title", ""))

    def runtime_artifact(self) -> dict[str, Any]:
        return {"name": self.name, "type": {"instanceSchema": self.instance_schema}, "uri": self.uri,
                "metadata": self.metadata}


@dataclasses.dataclass
class TaskRun:
    """What one task did: its kind, outputs and wall time."""

    name: str
    kind: str  # container | resolver | importer
    outputs: dict[str, list[Artifact]]
    seconds: float
    command: list[str] = dataclasses.field(default_factory=list)


# --- launching containers ---------------------------------------------------------------------------------------

# (image, full command, task name, the container's own env from the spec) -> None; raises TaskFailed
Launcher = Callable[[str, list[str], str, dict[str, str]], None]


@dataclasses.dataclass
class DockerLauncher:
    """Runs each task with `docker run --rm --network host` (loopback only, as everything here), with the given
    environment variables and host folders mounted at the same path (a local pipeline root)."""

    docker: Sequence[str] = ("docker",)
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    mounts: Sequence[str] = ()
    log_dir: str | None = None

    def __call__(self, image: str, command: list[str], task: str, spec_env: Mapping[str, str]) -> None:
        name = f"dcgan-kfp-{task.lower().replace('_', '-')}-{uuid.uuid4().hex[:8]}"
        cmd = [*self.docker, "run", "--rm", "--name", name, "--network", "host"]
        for folder in self.mounts:
            cmd += ["-v", f"{folder}:{folder}"]
        for key, value in sorted({**spec_env, **self.env}.items()):
            cmd += ["-e", f"{key}={value}"]
        cmd += [image, *command]
        log_path = os.path.join(self.log_dir, f"{task}.log") if self.log_dir else os.devnull
        if self.log_dir:
            os.makedirs(self.log_dir, exist_ok=True)
        with open(log_path, "a") as log:  # a retried task's attempts one after the other
            log.write("$ " + shlex.join(cmd) + "\n")
            log.flush()
            try:
                rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
            except KeyboardInterrupt:
                subprocess.run([*self.docker, "kill", name], capture_output=True, check=False)
                raise
        if rc != 0:
            tail = ""
            if self.log_dir:
                with open(log_path) as f:
                    tail = "".join(f.readlines()[-40:])
            raise TaskFailed(f"task {task}: container exited with {rc} (log: {log_path})\n{tail}")


# --- the spec -----------------------------------------------------------------------------------------------------

def task_order(tasks: Mapping[str, Any]) -> list[str]:
    """Topological order of a DAG's tasks (ties by name, so it is deterministic); a cycle or an unknown
    dependency is a SpecError."""
    deps: dict[str, set[str]] = {}
    for name, task in tasks.items():
        d = set(task.get("dependentTasks", []))
        for spec in task.get("inputs", {}).get("artifacts", {}).values():
            if "taskOutputArtifact" in spec:
                d.add(spec["taskOutputArtifact"]["producerTask"])
        for spec in task.get("inputs", {}).get("parameters", {}).values():
            if "taskOutputParameter" in spec:
                d.add(spec["taskOutputParameter"]["producerTask"])
        unknown = d - set(tasks)
        if unknown:
            raise SpecError(f"task {name} depends on unknown task(s) {sorted(unknown)}")
        deps[name] = d
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(tasks):
        ready = sorted(n for n in tasks if n not in done and deps[n] <= done)
        if not ready:
            raise SpecError(f"the DAG has a cycle among {sorted(set(tasks) - done)}")
        order.append(ready[0])
        done.add(ready[0])
    return order


_PLACEHOLDER = re.compile(r"\{\{\$(?P<path>[^}]*)\}\}")
_PATH = re.compile(r"^\.(?P<side>inputs|outputs)\.(?P<kind>parameters|artifacts)\['(?P<key>[^']+)'\]"
                   r"(?:\.(?P<field>uri|metadata\['(?P<mkey>[^']+)'\]))?$")


def fill_placeholders(text: str, executor_input: Mapping[str, Any]) -> str:
    """Replace the placeholders KFP's launcher replaces: `{{$}}` (the whole executor input, JSON),
    `{{$.outputs.output_file}}`, `{{$.inputs.parameters['k']}}`, `{{$.inputs|outputs.artifacts['k'].uri}}` and
    `{{$.inputs.artifacts['k'].metadata['m']}}`. Anything else is a SpecError."""

    def one(m: re.Match) -> str:
        path = m.group("path")
        if path == "":
            return json.dumps(executor_input, sort_keys=True)
        if path == ".outputs.output_file":
            return executor_input["outputs"]["outputFile"]
        p = _PATH.match(path)
        if not p:
            raise SpecError(f"placeholder {m.group(0)} is not supported")
        side = executor_input[p.group("side")]
        if p.group("kind") == "parameters":
            value = side.get("parameters", {}).get(p.group("key"))
            if value is None:
                raise SpecError(f"placeholder {m.group(0)}: no such parameter")
            v = next(iter(value.values()))
            return v if isinstance(v, str) else json.dumps(v)
        arts = side.get("artifacts", {}).get(p.group("key"), {}).get("artifacts", [])
        if not arts:
            return ""  # an optional input with nothing resolved
        if p.group("field") == "uri":
            return arts[0]["uri"]
        if p.group("mkey"):
            v = arts[0].get("metadata", {}).get(p.group("mkey"), "")
            return v if isinstance(v, str) else json.dumps(v)
        raise SpecError(f"placeholder {m.group(0)} is not supported")

    return _PLACEHOLDER.sub(one, text)


_CLAUSE = re.compile(r'^(?P<key>schema_title|state|name|metadata\.(?P<mkey>\w+)\.(?P<mtype>number_value|string_value))'
                     r'=(?P<value>"[^"]*"|\S+)$')


def matches(artifact: Artifact, filter_text: str) -> bool:
    """Whether `artifact` passes a resolver's ML Metadata filter (the `A AND B AND ...` subset TFX compiles)."""
    for clause in filter_text.split(" AND "):
        m = _CLAUSE.match(clause.strip())
        if not m:
            raise SpecError(f"resolver filter clause {clause!r} is not supported")
        value = m.group("value").strip('"')
        key = m.group("key")
        if key == "schema_title":
            ok = artifact.schema_title == value
        elif key == "state":
            ok = artifact.state == value
        elif key == "name":
            ok = artifact.name == value
        elif m.group("mtype") == "number_value":
            have = artifact.metadata.get(m.group("mkey"))
            ok = isinstance(have, (int, float)) and float(have) == float(value)
        else:
            ok = artifact.metadata.get(m.group("mkey")) == value
        if not ok:
            return False
    return True


# --- reading what executors wrote -----------------------------------------------------------------------------

def _read_text(path: str) -> str | None:
    if "://" not in path:
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return f.read()
    from dcgan import fileio

    fileio.ensure_filesystem(path)
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return f.read()


# --- the run -------------------------------------------------------------------------------------------------------

class ArtifactStore:
    """The artifacts recorded so far (a stand-in for the backend's ML Metadata), optionally kept in a JSON file."""

    def __init__(self, path: str | None = None):
        self.path = path
        self.artifacts: list[Artifact] = []
        if path and os.path.exists(path):
            with open(path) as f:
                self.artifacts = [Artifact(**a) for a in json.load(f)]
        self._ids = itertools.count(len(self.artifacts) + 1)

    def new_name(self) -> str:
        return f"local/metadataStores/default/artifacts/{next(self._ids)}-{uuid.uuid4().hex[:8]}"

    def add(self, artifact: Artifact) -> None:
        self.artifacts.append(artifact)
        if self.path:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(self.path, "w") as f:
                json.dump([dataclasses.asdict(a) for a in self.artifacts], f, indent=1)

    def query(self, filter_text: str) -> list[Artifact]:
        found = [a for a in self.artifacts if matches(a, filter_text)]
        return sorted(found, key=lambda a: a.created, reverse=True)[:1]


def run_pipeline_job(job: Mapping[str, Any] | str, launcher: Launcher, *, job_id: str | None = None,
                     store: ArtifactStore | None = None, log: Callable[[str], None] = print,
                     retries: int = 0) -> list[TaskRun]:
    """Execute every task of the PipelineJob `job` (a dict or a JSON file path); returns the task runs in order.
    A container task that fails is run again up to `retries` times with the same executor input (the same output
    URIs), as a task's retry policy does on Vertex AI / Kubeflow Pipelines (e.g. after a preempted node).
    Raises SpecError for a spec this runner cannot execute and TaskFailed when a task fails (its last attempt)."""
    if isinstance(job, str):
        with open(job) as f:
            job = json.load(f)
    if "pipelineSpec" not in job:
        raise SpecError("this is not a Vertex AI PipelineJob (no pipelineSpec); a PipelineSpec for open-source "
                        "Kubeflow Pipelines runs with kfp.local: python -m pipeline.kfp_local SPEC --pipeline-root DIR")
    spec = job["pipelineSpec"]
    root = job.get("runtimeConfig", {}).get("gcsOutputDirectory")
    if not root:
        raise SpecError("runtimeConfig.gcsOutputDirectory (the pipeline root) is missing")
    job_id = job_id or f"{spec['pipelineInfo']['name']}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    store = store or ArtifactStore()
    executors = spec["deploymentSpec"]["executors"]
    tasks = spec["root"]["dag"]["tasks"]
    produced: dict[str, dict[str, list[Artifact]]] = {}
    runs: list[TaskRun] = []
    for task_id, name in enumerate(task_order(tasks), start=1):
        task = tasks[name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = executors[component["executorLabel"]]
        started = time.time()
        inputs = _input_artifacts(name, task, produced)
        if "resolver" in executor:
            outputs, command, kind = _resolve(executor["resolver"], inputs, store), [], "resolver"
        elif "importer" in executor:
            outputs, command, kind = _import(executor["importer"], component, store), [], "importer"
        elif "container" in executor:
            kind = "container"
            task_root = f"{root.rstrip('/')}/{job_id}/{name}_{task_id}"
            outputs, command = _run_container(name, task, component, executor["container"], inputs, task_root,
                                              store, launcher, log, retries)
        else:
            raise SpecError(f"task {name}: executor kind {sorted(executor)} is not supported")
        produced[name] = outputs
        runs.append(TaskRun(name, kind, outputs, time.time() - started, command))
        summary = ", ".join(f"{k}: {len(v)}" for k, v in outputs.items())
        log(f"kubeflow-local: {name} ({kind}) done in {time.time() - started:.0f} s -> {summary or 'no outputs'}")
    return runs


def _input_artifacts(name: str, task: Mapping[str, Any],
                     produced: Mapping[str, Mapping[str, list[Artifact]]]) -> dict[str, list[Artifact]]:
    inputs: dict[str, list[Artifact]] = {}
    for key, spec in task.get("inputs", {}).get("artifacts", {}).items():
        if "taskOutputArtifact" not in spec:
            raise SpecError(f"task {name}: input artifact {key} ({sorted(spec)}) is not supported")
        ref = spec["taskOutputArtifact"]
        outputs = produced[ref["producerTask"]]
        if ref["outputArtifactKey"] not in outputs:
            raise SpecError(f"task {name}: input {key} names output {ref['outputArtifactKey']!r} of "
                            f"{ref['producerTask']}, which has {sorted(outputs)}")
        inputs[key] = outputs[ref["outputArtifactKey"]]
    return inputs


def _resolve(resolver: Mapping[str, Any], inputs: Mapping[str, list[Artifact]],
             store: ArtifactStore) -> dict[str, list[Artifact]]:
    executor_input = {"inputs": {"artifacts": {k: {"artifacts": [a.runtime_artifact() for a in v]}
                                               for k, v in inputs.items()}}, "outputs": {}}
    outputs = {}
    for key, query in resolver["outputArtifactQueries"].items():
        filter_text = query["filter"]
        if any(not v for v in inputs.values()) and "{{$.inputs" in filter_text:
            outputs[key] = []  # the filter refers to an input that resolved to nothing
            continue
        outputs[key] = store.query(fill_placeholders(filter_text, executor_input))
    return outputs


def _import(importer: Mapping[str, Any], component: Mapping[str, Any],
            store: ArtifactStore) -> dict[str, list[Artifact]]:
    uri_value = importer["artifactUri"]
    uri = uri_value.get("constant") or uri_value.get("constantValue", {}).get("stringValue")
    if not uri:
        raise SpecError(f"importer artifactUri {uri_value} is not a constant")
    schema = importer["typeSchema"].get("instanceSchema") or f"title: {importer['typeSchema']['schemaTitle']}\n"
    (key,) = component["outputDefinitions"]["artifacts"]
    artifact = Artifact(store.new_name(), schema, uri, dict(importer.get("metadata", {})), time.time())
    store.add(artifact)
    return {key: [artifact]}


def _parameters(name: str, task: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(inputs.parameters, inputs.parameterValues) of the executor input: old-style `constantValue`s go to the
    former (TFX's entrypoint reads them there when no inputs spec is passed), `constant`s to the latter."""
    old, new = {}, {}
    for key, spec in task.get("inputs", {}).get("parameters", {}).items():
        runtime = spec.get("runtimeValue", {})
        if "constantValue" in runtime:
            old[key] = runtime["constantValue"]
        elif "constant" in runtime:
            new[key] = runtime["constant"]
        else:
            raise SpecError(f"task {name}: input parameter {key} ({sorted(spec)}) is not supported")
    return old, new


def _run_container(name: str, task: Mapping[str, Any], component: Mapping[str, Any], container: Mapping[str, Any],
                   inputs: Mapping[str, list[Artifact]], task_root: str, store: ArtifactStore, launcher: Launcher,
                   log: Callable[[str], None], retries: int = 0) -> tuple[dict[str, list[Artifact]], list[str]]:
    parameters, parameter_values = _parameters(name, task)
    declared = component.get("inputDefinitions", {}).get("parameters", {})
    missing = set(declared) - set(parameters) - set(parameter_values)
    if missing:
        raise SpecError(f"task {name}: declared input parameters {sorted(missing)} have no value")
    outputs: dict[str, list[Artifact]] = {}
    for key, spec in component.get("outputDefinitions", {}).get("artifacts", {}).items():
        schema = spec["artifactType"].get("instanceSchema") or f"title: {spec['artifactType']['schemaTitle']}\n"
        outputs[key] = [Artifact(store.new_name(), schema, f"{task_root}/{key}", {}, time.time())]
    executor_input = {
        "inputs": {
            "parameters": parameters,
            "parameterValues": parameter_values,
            "artifacts": {k: {"artifacts": [a.runtime_artifact() for a in v]} for k, v in inputs.items()},
        },
        "outputs": {
            "artifacts": {k: {"artifacts": [a.runtime_artifact() for a in v]} for k, v in outputs.items()},
            "outputFile": f"{task_root}/executor_output.json",
        },
    }
    command = [fill_placeholders(a, executor_input)
               for a in [*container.get("command", []), *container.get("args", [])]]
    log(f"kubeflow-local: {name}: {container['image']} {shlex.join(container.get('command', []))}")
    spec_env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
    for attempt in range(1, retries + 2):
        try:
            launcher(container["image"], command, name, spec_env)
            break
        except TaskFailed as e:
            if attempt > retries:
                raise
            log(f"kubeflow-local: {name}: attempt {attempt} failed ({str(e).splitlines()[0]}); retrying with the "
                "same executor input")
    text = _read_text(executor_input["outputs"]["outputFile"])
    if text:
        written = json.loads(text).get("artifacts", {})
        for key, arts in outputs.items():
            for art, out in zip(arts, written.get(key, {}).get("artifacts", [])):
                art.uri = out.get("uri") or art.uri
                art.metadata = dict(out.get("metadata", {}))
    for arts in outputs.values():
        for art in arts:
            store.add(art)
    return outputs, command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.kubeflow_local", description=__doc__.split("\n\n")[0])
    parser.add_argument("job", help="PipelineJob JSON written by `dcgan pipeline compile --kubeflow --target vertex`")
    parser.add_argument("--docker", default="docker", help="docker client command (default: docker)")
    parser.add_argument("--env", action="append", default=[],
                        help="environment variable passed into every task: NAME (its value here) or NAME=VALUE")
    parser.add_argument("--mount", action="append", default=[], help="host folder mounted at the same path")
    parser.add_argument("--state", help="JSON file recording artifacts across runs (for the resolvers)")
    parser.add_argument("--logs", default="kubeflow-local-logs", help="folder for each task's log")
    parser.add_argument("--retries", type=int, default=0,
                        help="run a failed container task again up to N times with the same inputs and outputs, as a "
                             "retry policy does (a preempted Trainer continues its parked run)")
    args = parser.parse_args(argv)
    with open(args.job) as f:
        job = json.load(f)
    root = job.get("runtimeConfig", {}).get("gcsOutputDirectory", "")
    mounts = list(args.mount)
    if root and "://" not in root:
        os.makedirs(root, exist_ok=True)
        mounts.append(root)
    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        env[key] = value if sep else os.environ.get(key, "")
    launcher = DockerLauncher(docker=shlex.split(args.docker), env=env, mounts=mounts, log_dir=args.logs)
    try:
        runs = run_pipeline_job(job, launcher, store=ArtifactStore(args.state),
                                log=lambda m: print(m, file=sys.stderr), retries=args.retries)
    except (SpecError, TaskFailed) as e:
        print(f"kubeflow-local: error: {e}", file=sys.stderr)
        return 1
    for r in runs:
        for key, arts in r.outputs.items():
            for a in arts:
                print(f"{r.name}.{key}: {a.uri}")
    return 0


if __name__ == "__main__":
    from dcgan import fileio

    fileio.exit_process(main())
