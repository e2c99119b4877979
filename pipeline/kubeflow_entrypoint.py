"""The container entrypoint of every TFX task in the compiled Kubeflow spec: TFX's own Kubeflow V2 entrypoint
(`tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`), with what an object-store pipeline root needs.

    python -m pipeline.kubeflow_entrypoint --executor_class_path ... --json_serialized_invocation_args '{{$}}' ...

TFX's entrypoint never imports tensorflow-io, so an executor reading or writing `s3://` artifacts would find no
such filesystem (TFX issue 4537); and once tensorflow-io's S3 filesystem was used, the process aborts at exit
(tensorflow/io#2039), which Kubeflow would report as a failed task although the executor output was written.
And TFX's entrypoint rebuilds each artifact from its type's schema title, importing a custom type's title as a class
path: the project's `dcgan.IngestReport` / `dcgan.FidEvaluation` (the `<namespace>.<Title>` form the V2 compiler
requires of custom types) are not import paths, and the task fails with "Could not import dcgan.IngestReport".
This wrapper registers the filesystem when the executor input names an `s3://` URI, maps the project's artifact
type titles to their classes (TFX's own table for first-party types), and ends through `dcgan.fileio.exit_process`. Arguments and behaviour are otherwise exactly TFX's. `compile_kubeflow` points the
compiled spec's container command here; it runs the same on a real cluster.
"""

from __future__ import annotations

import sys
import traceback

TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
COMMAND = ["python", "-m", "pipeline.kubeflow_entrypoint"]

# The project's custom artifact types: schema title (TYPE_NAME) -> import path.
ARTIFACT_CLASSES = {
    "dcgan.IngestReport": "components.ingest.component.IngestReport",
    "dcgan.FidEvaluation": "components.evaluator.component.FidEvaluation",
}


def register_artifact_types() -> None:
    """Let TFX's entrypoint find the project's custom artifact classes by their schema titles."""
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    compiler_utils.TITLE_TO_CLASS_PATH.update(ARTIFACT_CLASSES)


def run(argv: list[str]) -> int:
    """Run TFX's Kubeflow V2 executor entrypoint with `argv` (without the program name); returns the exit code."""
    from dcgan import fileio

    if any("s3://" in a for a in argv):
        fileio.ensure_filesystem("s3://")
    register_artifact_types()
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as tfx_entrypoint

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
