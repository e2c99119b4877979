"""`FaceExampleGen`: the TFX component that runs the ingest Beam pipeline — the first node of the pipeline's DAG.

Outputs a standard `Examples` artifact (split_names ["train", "eval", "inputs"], GZIP TFRecords of tf.Example in
the `dcgan.schema` layout, version 2, payload format FORMAT_TF_EXAMPLE) that a stock TFX Trainer and
`dcgan train --data <uri>` read (train and eval; `inputs` holds one row per input item with its outcome, for the
data validation's statistics), and an `IngestReport` artifact holding ingest_report.json/.txt and preview.png. The
counts are also set as custom properties of both artifacts (`num_input`, `num_train`, `num_eval`, `num_rejected`,
`rejected_<reason>`), so they show in MLMD and in KFP's UI without opening files.

The executor is a `BaseBeamExecutor`: the pipeline's `beam_pipeline_args` choose the runner (DirectRunner by
default; `--direct_num_workers=N --direct_running_mode=multi_processing`; Dask, Flink, Spark or Dataflow).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_component, base_beam_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, channel, component_spec, standard_artifacts
from tfx.types.artifact import Artifact

from components.ingest import beamio
from components.ingest import pipeline as ingest
from components.ingest import sources as sourcelib
from components.ingest.config import IngestConfig, IngestSettings
from components.parameters import from_exec_properties, parameter_types, typed_values
from dcgan import fileio, schema
from dcgan.interrupt import failing_step

log = logging.getLogger(__name__)


class IngestReport(Artifact):
    """The ingest report of one FaceExampleGen run (files: ingest_report.json, ingest_report.txt, preview.png)."""

    TYPE_NAME = "dcgan.IngestReport"  # namespaced: the Kubeflow V2 compiler requires it for custom types


# Execution parameters: every IngestConfig field (optional where it may be None), plus `source_fingerprint`, which is
# no IngestConfig field: it is there so that a change in the source's files changes the execution's cache key.
_SETTINGS = parameter_types(IngestConfig)
_PARAMETERS = {**_SETTINGS, "source_fingerprint": (str, True)}


class FaceExampleGenSpec(component_spec.ComponentSpec):
    PARAMETERS = {name: component_spec.ExecutionParameter(type=t, optional=optional)
                  for name, (t, optional) in _PARAMETERS.items()}
    INPUTS: dict[str, component_spec.ChannelParameter] = {}
    OUTPUTS = {
        "examples": component_spec.ChannelParameter(type=standard_artifacts.Examples),
        "ingest_report": component_spec.ChannelParameter(type=IngestReport),
    }


def config_from_exec_properties(exec_properties: dict[str, Any]) -> IngestConfig:
    return IngestConfig(**from_exec_properties(exec_properties, _SETTINGS)).validate()


class Executor(base_beam_executor.BaseBeamExecutor):
    """Runs `components.ingest.pipeline` with the pipeline's beam_pipeline_args and fills the output artifacts."""

    @failing_step("FaceExampleGen")  # SIGINT/SIGTERM: the execution fails and publishes nothing
    def Do(self, input_dict: dict[str, list[Artifact]], output_dict: dict[str, list[Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        report_artifact = artifact_utils.get_single_instance(output_dict["ingest_report"])
        config = config_from_exec_properties(exec_properties)
        fileio.ensure_filesystems(examples.uri, report_artifact.uri, config.source)  # s3:// in this process
        plan = ingest.plan_ingest(config)
        ingest.prepare_output(examples.uri, report_artifact.uri, overwrite=True)

        from apache_beam.options.pipeline_options import PipelineOptions

        # the S3 options derived from AWS_ENDPOINT_URL join the pipeline's own arguments (components.ingest.beamio)
        self._beam_pipeline_args = beamio.pipeline_args(self._beam_pipeline_args)
        options = PipelineOptions(self._beam_pipeline_args)
        report = ingest.execute(self._make_beam_pipeline(), plan, examples.uri, report_artifact.uri, options)

        examples.split_names = artifact_utils.encode_split_names(list(schema.ALL_SPLITS))
        examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(examples, "tfrecords_gzip")
        properties = {"num_input": report.input_count, "num_rejected": len(report.rejects),
                      **{f"num_{split}": n for split, n in report.written.items()},
                      **{f"rejected_{reason}": n for reason, n in report.reject_counts.items()}}
        for artifact in (examples, report_artifact):
            for name, value in properties.items():
                artifact.set_int_custom_property(name, int(value))
            artifact.set_string_custom_property("source", plan.source.spec)


class FaceExampleGen(base_beam_component.BaseBeamComponent):
    """Ingest face images into an `Examples` artifact (train/eval, and inputs: each item's outcome) plus an
    `IngestReport`.

    Args:
      source: a folder (recursive), a .zip (CelebA layout; list_attr_celeba.txt labels when present), a glob, one
        image, or `avatars:N:SEED` (the built-in avatar set). Paths are read by the Beam workers.
      size: output image side (the examples are size×size×3 PNGs).
      mode: `align` (MTCNN detection + 5-landmark similarity alignment; real photos), `center-crop` (pre-aligned
        sets such as CelebA img_align_celeba) or `none` (square images, resize only). Ignored for avatars.
      crop_size: center-crop mode: side of the central square before resizing (carpedm20 used 108 on CelebA);
        None = the largest central square.
      margin: align mode: border around the canonical landmark template, as a fraction of its side per side.
      face: align mode, which face when several: `largest`, `confident` or `central`.
      min_confidence: align mode: MTCNN score below which a detection is ignored.
      min_face_size: align mode: faces smaller than this (source pixels) are rejected as `face_too_small`.
      detect_size: align mode: side of the detector's canvas (bigger finds smaller faces, slower).
      eval_ratio: fraction of examples put in the eval split (chosen by a salted content hash: stable).
      seed: salts the split hash; for avatars also given in the source string.
      max_pixels: inputs with more pixels are rejected (`too_large`) from their header, before decoding.
      attributes_file: a CelebA-format attribute file; None searches next to the source; "" = no labels.
      records_per_shard: target examples per TFRecord file.
      preview_count: images in the report's preview grid.
      detection_batch: images per detector call (align mode).
      worker_threads: TF/OpenCV threads per worker; 0 = local cores / local workers.
      fingerprint_source: hash the source's file names, sizes and mtimes at construction into an execution
        property, so that TFX's cache is invalidated when the data changes (skipped when the source is not a
        local path).
    """

    SPEC_CLASS = FaceExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, source: str, size: int = 64, fingerprint_source: bool = True, **settings: Any):
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(IngestSettings)})
        if unknown:
            raise TypeError(f"FaceExampleGen got unknown setting(s) {unknown}; see components.ingest.config")
        config = IngestConfig(source=source, size=size, **typed_values(settings, _SETTINGS)).validate()
        attributes_file = config.attributes_file
        fingerprint = None
        if fingerprint_source and _is_local(source):
            try:
                fingerprint = sourcelib.parse_source(source, attributes_file).fingerprint()
            except sourcelib.SourceError as e:
                raise ingest.IngestError(str(e)) from e
        spec = FaceExampleGenSpec(
            examples=channel.Channel(type=standard_artifacts.Examples),
            ingest_report=channel.Channel(type=IngestReport),
            source_fingerprint=fingerprint,
            **config.to_dict())
        super().__init__(spec=spec)


def _is_local(source: str) -> bool:
    if source.startswith("avatars:"):
        return True
    return "://" not in source and (os.path.exists(source) or any(c in source for c in "*?["))
