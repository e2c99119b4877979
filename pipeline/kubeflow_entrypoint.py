"""The container entrypoint of every TFX task in the compiled Kubeflow spec: TFX's own Kubeflow V2 entrypoint
(`tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`), plus four things this project needs.

    python -m pipeline.kubeflow_entrypoint --executor_class_path ... --json_serialized_invocation_args '{{$}}' ...

1. `s3://` roots. TFX's entrypoint never imports tensorflow-io, so an executor reading or writing `s3://` artifacts
   finds no such filesystem (TFX issue 4537); and once tensorflow-io's S3 filesystem was used, the process aborts at
   exit (tensorflow/io#2039), which Kubeflow would report as a failed task although the executor output was
   written. The filesystem is registered when the executor input names an `s3://` URI, and the process ends
   through `dcgan.fileio.exit_process`.
2. Custom artifact types. TFX's entrypoint rebuilds each artifact from its type's schema title, importing a custom
   type's title as a class path; `dcgan.IngestReport` / `dcgan.FidEvaluation` (the `<namespace>.<Title>` form the
   V2 compiler requires of custom types) are no import paths ("Could not import dcgan.IngestReport"). They are
   added to TFX's own title → class table.
3. The ModelBlessing's model ids. Under Kubeflow an artifact's id is a hash of its name; TFX rewrites the ids its
   own Evaluator writes into the blessing (`current_model_id`, `baseline_model_id`) back to artifact names, which
   the compiled latest-blessed-model resolver queries by (`name="{{...current_model_id}}"`). The project's
   FidEvaluator writes the same properties and gets the same translation; without it a later run's resolver finds
   no baseline model and the FID regression gate is silently skipped.

4. Input artifact types as open-source drivers hand them over. TFX's entrypoint rebuilds each input artifact's class
   from the type in the executor input; Vertex passes the spec's `tfx.*` schema, but Kubeflow Pipelines' open-source
   driver and `kfp.local` pass artifacts they read back from their own metadata: typed `system.Artifact` (kfp.local)
   or not typed at all (the backend's driver) — TFX then fails with "Could not import system.Artifact" or
   "RuntimeArtifact is expected to have a type". The type each input must have is in the task's own inputs spec
   (`--json_serialized_inputs_spec_args`, which TFX compiles into every container task with schema 2.1): an input
   whose type the entrypoint cannot rebuild gets the spec's type back (`restore_input_types`).

5. Start-up time. Every task is one container that imports TFX's entrypoint. Two packages import much more than a task
   runs: `kfp/__init__.py` imports the KFP client and DSL (kubernetes, jsonschema: ~2 s) unless `_KFP_RUNTIME=true`,
   the switch KFP sets in its own component containers (TFX's entrypoint needs only `kfp.pipeline_spec`'s protos);
   and `tfx/components/__init__.py` imports all sixteen TFX components (Transform's tensorflow_transform,
   BulkInferrer, InfraValidator...) where a task runs one executor: that package's own names are loaded when first
   used instead (`light_start`, pipeline/startup.py). Measured in the pipeline image: TFX's entrypoint imports in
   ~5 s instead of ~8 s, for every task of every run.

Arguments and behaviour are otherwise exactly TFX's. `compile_kubeflow` points the compiled spec's container
command here; it runs the same on a real cluster.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import types
from typing import Any

import yaml

TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
COMMAND = ["python", "-m", "pipeline.kubeflow_entrypoint"]

# The project's custom artifact types: schema title (TYPE_NAME) -> import path.
ARTIFACT_CLASSES = {
    "dcgan.IngestReport": "components.ingest.component.IngestReport",
    "dcgan.FidEvaluation": "components.evaluator.component.FidEvaluation",
}


def light_start() -> None:
    """Before TFX's entrypoint is imported: KFP's runtime switch on (a value already set wins), and `tfx.components`'
    `__init__` (every TFX component) deferred to the first use of its names (5. above; pipeline/startup.py)."""
    from pipeline.startup import defer_tfx_components

    os.environ.setdefault("_KFP_RUNTIME", "true")
    defer_tfx_components()


def _prepare_tfx(tfx_entrypoint: types.ModuleType) -> None:
    from tfx.components.evaluator import executor as evaluator_executor
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    from components.evaluator.component import Executor as FidEvaluatorExecutor

    compiler_utils.TITLE_TO_CLASS_PATH.update(ARTIFACT_CLASSES)
    # TFX checks `issubclass(executor_class, evaluator_executor.Executor)` before translating a blessing's ids.
    tfx_entrypoint.evaluator_executor = types.SimpleNamespace(
        Executor=(evaluator_executor.Executor, FidEvaluatorExecutor))


def _schema_title(artifact_type: dict[str, Any]) -> str | None:
    if artifact_type.get("schemaTitle"):
        return str(artifact_type["schemaTitle"])
    if artifact_type.get("instanceSchema"):
        return str((yaml.safe_load(artifact_type["instanceSchema"]) or {}).get("title") or "") or None
    return None


def restore_input_types(invocation: dict[str, Any], inputs_spec: dict[str, Any]) -> dict[str, Any]:
    """The executor input `invocation` (the `{{$}}` JSON, as a dict) with every input artifact whose type TFX cannot
    rebuild (none, or a title such as `system.Artifact` that is neither a TFX type nor one of ours) given the type
    the task's `inputs_spec` (ComponentInputsSpec JSON) declares for it. Returns a new dict."""
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    known = set(compiler_utils.TITLE_TO_CLASS_PATH) | set(ARTIFACT_CLASSES)
    declared = inputs_spec.get("artifacts") or {}
    out = json.loads(json.dumps(invocation))
    for key, artifact_list in ((out.get("inputs") or {}).get("artifacts") or {}).items():
        spec_type = (declared.get(key) or {}).get("artifactType")
        if not spec_type:
            continue
        for artifact in artifact_list.get("artifacts") or []:
            if _schema_title(artifact.get("type") or {}) not in known:
                artifact["type"] = dict(spec_type)
    return out


def _flag_index(argv: list[str], flag: str) -> tuple[int, str] | None:
    """(index, prefix) of the argv item holding the value of `--flag VALUE` (prefix "") or `--flag=VALUE` (prefix
    "--flag="); None when absent."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return i + 1, ""
        if arg.startswith(flag + "="):
            return i, flag + "="
    return None


def with_restored_input_types(argv: list[str]) -> list[str]:
    """argv with `--json_serialized_invocation_args` rewritten by `restore_input_types` when the task also has
    `--json_serialized_inputs_spec_args` (unchanged otherwise, e.g. a schema 2.0 spec on Vertex)."""
    invocation = _flag_index(argv, "--json_serialized_invocation_args")
    inputs_spec = _flag_index(argv, "--json_serialized_inputs_spec_args")
    if invocation is None or inputs_spec is None:
        return list(argv)
    (i, prefix), (j, spec_prefix) = invocation, inputs_spec
    restored = restore_input_types(json.loads(argv[i][len(prefix):]), json.loads(argv[j][len(spec_prefix):]))
    out = list(argv)
    out[i] = prefix + json.dumps(restored)
    return out


def run(argv: list[str]) -> int:
    """Run TFX's Kubeflow V2 executor entrypoint with `argv` (without the program name); returns the exit code."""
    from dcgan import fileio

    if any("s3://" in a for a in argv):
        fileio.ensure_filesystem("s3://")
    light_start()
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as tfx_entrypoint

    from dcgan.interrupt import Interrupted, StepInterrupted, stop_on_signals

    _prepare_tfx(tfx_entrypoint)
    argv = with_restored_input_types(argv)
    try:
        with stop_on_signals():  # SIGTERM (eviction, preemption): the task fails cleanly (143), the Trainer parks
            app.run(tfx_entrypoint.main, argv=[TFX_ENTRYPOINT, *argv], flags_parser=tfx_entrypoint._parse_flags)
    except (StepInterrupted, Interrupted) as e:
        print(f"{TFX_ENTRYPOINT}: {e}", file=sys.stderr)
        return e.exit_code
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception:  # noqa: BLE001 - report and fail the task, as TFX's entrypoint would
        traceback.print_exc()
        return 1
    return 0


def main() -> None:
    from dcgan import fileio

    fileio.exit_process(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
