"""The Pusher's executor: TFX's stock Pusher, except that a version directory becomes loadable only when complete.

TFX's own executor copies the model file by file into `<base>/<version>/`, saved_model.pb last; a push interrupted
while saved_model.pb itself is being copied (local disk: the copy is not atomic) leaves a truncated saved_model.pb in
an integer-named folder, which a model server tries to load. This executor instead:

- local / mounted base directory: copies the whole model to `<base>/.<version>.tmp-<pid>` (the leading dot and the
  name keep it out of every server's version scan), then renames it to `<base>/<version>` in one step;
- object store (gs://, s3://; no rename): uploads every other file first and `saved_model.pb` last, each object in
  one PUT (dcgan.fileio.upload_tree), so the version exists for a server only once its last object does; the
  objects of a failed upload are deleted (best effort: a killed process leaves objects without saved_model.pb,
  which no server loads).

Everything else is the stock executor's: the blessing checks, the version (UNIX timestamp), the archive copy in the
PushedModel artifact and its MLMD properties (`pushed`, `pushed_destination`, `pushed_version`), so lineage, the
Resolver and the Kubeflow compile see a Pusher. Use: `tfx.components.Pusher(..., custom_executor_spec=EXECUTOR_SPEC)`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any

import tensorflow as tf
from tfx.components.pusher import executor as tfx_pusher
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from dcgan import fileio
from dcgan.interrupt import failing_step

log = logging.getLogger(__name__)

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def _copy_file(src: str, dst: str) -> None:
    """One file, any filesystem to any filesystem (tests replace it to interrupt a push)."""
    tf.io.gfile.copy(src, dst, overwrite=True)


def _copy_tree(src: str, dst: str) -> None:
    """Every file under `src` (local or object store) into the local folder `dst`, saved_model.pb last."""
    files = []
    for folder, _, names in tf.io.gfile.walk(src):
        rel = folder[len(src.rstrip("/")):].strip("/")
        files += [(rel, name) for name in names]
    files.sort(key=lambda f: (f[0] == "" and f[1] in SAVED_MODEL_FILES, f))
    for rel, name in files:
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        _copy_file(fileio.join(src, rel, name) if rel else fileio.join(src, name), os.path.join(dst, rel, name))


def is_pushed(version_dir: str) -> bool:
    """Whether `version_dir` holds a complete push (its saved_model.pb, written last, exists)."""
    return any(fileio.exists(fileio.join(version_dir, name)) for name in SAVED_MODEL_FILES)


def publish_version(model_dir: str, base: str, version: str) -> str:
    """Copy the SavedModel `model_dir` to `<base>/<version>` so that it becomes loadable only when complete (see the
    module docstring). Returns the version directory."""
    fileio.ensure_filesystems(model_dir, base)
    target = fileio.join(base, version)
    if not fileio.is_remote(base):
        os.makedirs(base, exist_ok=True)
        tmp = os.path.join(base, f".{version}.tmp-{os.getpid()}")
        try:
            _copy_tree(model_dir, tmp)
            os.rename(tmp, target)  # one step: the version folder appears whole
        finally:
            fileio.remove_tree(tmp)
        return target
    with tempfile.TemporaryDirectory(prefix="dcgan-push-") as staging:
        if fileio.is_remote(model_dir):
            _copy_tree(model_dir, staging)
            source = staging
        else:
            source = model_dir
        try:
            fileio.upload_tree(source, target, last=SAVED_MODEL_FILES)
        except BaseException:
            try:
                fileio.remove_tree(target)  # nothing loadable is left either way; this removes the debris
            except Exception as cleanup_error:  # noqa: BLE001 - the push's own error is the one to report
                log.warning("could not remove the partial push %s: %s", target, cleanup_error)
            raise
    return target


class Executor(tfx_pusher.Executor):
    """The stock Pusher executor with `publish_version` as its copy to the push destination."""

    @failing_step("Pusher")  # SIGINT/SIGTERM: the execution fails and publishes nothing
    def Do(self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]],  # noqa: N802 - TFX's name
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        kind = destination.WhichOneof("destination")
        if kind != "filesystem":
            raise NotImplementedError(f"Invalid push destination {kind}")
        versioning = destination.filesystem.versioning
        if versioning not in (pusher_pb2.Versioning.AUTO, pusher_pb2.Versioning.UNIX_TIMESTAMP):
            raise NotImplementedError(f"Invalid Versioning {versioning}")
        version = str(int(time.time()))
        base = destination.filesystem.base_directory
        serving_path = fileio.join(base, version)
        if is_pushed(serving_path):  # the stock executor's rule, on a complete version only
            log.info("Destination directory %s already holds this push, skipping the copy.", serving_path)
        else:
            publish_version(model_path, base, version)
            log.info("Model written to serving path %s.", serving_path)
        io_utils.copy_dir(model_path, model_push.uri)  # the archive copy, as the stock executor makes it
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)
        log.info("Model pushed to %s.", model_push.uri)


EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
