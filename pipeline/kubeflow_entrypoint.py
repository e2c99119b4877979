"""The container entrypoint of every TFX task in the compiled Kubeflow spec: TFX's own Kubeflow V2 entrypoint
(`tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`), plus three things this project needs.

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

Arguments and behaviour are otherwise exactly TFX's. `compile_kubeflow` points the compiled spec's container
command here; it runs the same on a real cluster.
"""

from __future__ import annotations

import sys
import traceback
import types

TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
COMMAND = ["python", "-m", "pipeline.kubeflow_entrypoint"]

# The project's custom artifact types: schema title (TYPE_NAME) -> import path.
ARTIFACT_CLASSES = {
    "dcgan.IngestReport": "components.ingest.component.IngestReport",
    "dcgan.FidEvaluation": "components.evaluator.component.FidEvaluation",
}


def _prepare_tfx(tfx_entrypoint: types.ModuleType) -> None:
    from tfx.components.evaluator import executor as evaluator_executor
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    from components.evaluator.component import Executor as FidEvaluatorExecutor

    compiler_utils.TITLE_TO_CLASS_PATH.update(ARTIFACT_CLASSES)
    # TFX checks `issubclass(executor_class, evaluator_executor.Executor)` before translating a blessing's ids.
    tfx_entrypoint.evaluator_executor = types.SimpleNamespace(
        Executor=(evaluator_executor.Executor, FidEvaluatorExecutor))


def run(argv: list[str]) -> int:
    """Run TFX's Kubeflow V2 executor entrypoint with `argv` (without the program name); returns the exit code."""
    from dcgan import fileio

    if any("s3://" in a for a in argv):
        fileio.ensure_filesystem("s3://")
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as tfx_entrypoint

    _prepare_tfx(tfx_entrypoint)
    try:
        app.run(tfx_entrypoint.main, argv=[TFX_ENTRYPOINT, *argv], flags_parser=tfx_entrypoint._parse_flags)
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
