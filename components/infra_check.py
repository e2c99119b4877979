"""`InfraCheck`: the InfraValidator role (LOAD_AND_QUERY) without Docker.

It serves the candidate SavedModel with the project's TF-Serving-compatible model server on loopback ports, queries
every signature once over gRPC and REST (serving.model_server.infra.load_and_query), and writes an `InfraBlessing`
whose `blessed` custom property (1/0) the stock Pusher honours, with the report (`infra_report.json`) in the artifact
and the reason as a custom property. In Kubernetes the same directory is served by the real tensorflow/serving image.
"""


import os
import tempfile

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import InfraBlessing, Model

from dcgan import fileio

REPORT_FILE = "infra_report.json"


def serving_dir(model_uri: str) -> str:
    """The SavedModel inside a TFX Model artifact (`Format-Serving/`), or the URI itself when it is one."""
    candidate = fileio.join(model_uri, "Format-Serving")
    return candidate if fileio.isdir(candidate) else model_uri


@component
def InfraCheck(  # noqa: N802 - TFX component names are classes
    model: InputArtifact[Model],
    blessing: OutputArtifact[InfraBlessing],
    timeout_seconds: Parameter[int] = 180,
) -> None:
    """Load the model in the model server and query every signature once; bless it only if that works."""
    from dcgan.interrupt import failing_step
    from serving.model_server.infra import InfraValidationError, load_and_query

    fileio.ensure_filesystems(model.uri, blessing.uri)
    fileio.makedirs(blessing.uri)
    try:
        model_dir = serving_dir(model.uri)
        # SIGINT/SIGTERM: the model server stops with it, the execution fails and publishes nothing
        with failing_step("InfraCheck"), tempfile.TemporaryDirectory(prefix="dcgan-infra-") as local:
            if fileio.is_remote(model_dir):  # check the very bytes that were pushed, from a local copy
                model_dir = fileio.download_tree(model_dir, os.path.join(local, "model"))
            report = load_and_query(model_dir, timeout_s=float(timeout_seconds))
        blessed, reason = True, f"served and answered {len(report['signatures'])} signatures over gRPC and REST"
    except InfraValidationError as e:
        report, blessed, reason = {"ok": False, "error": str(e)}, False, str(e)
    fileio.write_json_atomic(fileio.join(blessing.uri, REPORT_FILE), report, indent=2, default=str)
    fileio.write_bytes_atomic(fileio.join(blessing.uri, "INFRA_BLESSED" if blessed else "INFRA_NOT_BLESSED"), b"")
    blessing.set_int_custom_property("blessed", 1 if blessed else 0)
    blessing.set_string_custom_property("reason", reason[:1000])
