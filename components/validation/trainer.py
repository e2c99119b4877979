"""The gate: TFX's Trainer with one more (optional) input, `data_validation` (the ExampleValidator's
ExampleAnomalies), whose executor refuses to train on a drop that did not pass validation. It raises
`DataValidationError` naming each anomaly before `run_fn` is called, so no training time is spent; the Trainer (and
everything after it) has the validation result as an input, so lineage shows it. Everything else is the stock
Trainer's (GenericExecutor, `run_fn`, its MLMD type's outputs)."""

from __future__ import annotations

import os
from typing import Any

from tfx import types
from tfx.components.example_validator import executor as tfx_validator
from tfx.components.trainer import executor as tfx_trainer
from tfx.components.trainer.component import Trainer as TfxTrainer
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, component_spec, standard_artifacts, standard_component_specs
from tfx.types.artifact import Artifact
from tfx.utils import json_utils

from components.validation.report import DataValidationError, anomaly_lines

DATA_VALIDATION_KEY = "data_validation"


class TrainerSpec(standard_component_specs.TrainerSpec):
    INPUTS = {**standard_component_specs.TrainerSpec.INPUTS,
              DATA_VALIDATION_KEY: component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies,
                                                                   optional=True)}


def refusal(anomalies: Artifact) -> DataValidationError | None:
    """The error for an ExampleAnomalies artifact with a split that is not blessed (None: every split passed)."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    from dcgan import fileio

    try:
        blessed = anomalies.get_json_value_custom_property(tfx_validator.ARTIFACT_PROPERTY_BLESSED_KEY) or {}
    except Exception:  # noqa: BLE001 - an artifact without the property: judge by its anomalies alone
        blessed = {}
    found = {}
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), tfx_validator.DEFAULT_FILE_NAME)
        split_anomalies = anomalies_pb2.Anomalies()
        if fileio.exists(path):
            split_anomalies.ParseFromString(fileio.read_bytes(path))
        if split_anomalies.anomaly_info or split_anomalies.HasField("dataset_anomaly_info") or \
                blessed.get(split, tfx_validator.BLESSED_VALUE) != tfx_validator.BLESSED_VALUE:
            found[split] = split_anomalies
    if not found:
        return None
    lines = anomaly_lines(found) or [f"{split}: not blessed by the ExampleValidator" for split in found]
    schema_path = anomalies.get_string_custom_property("schema_path") if anomalies.has_custom_property(
        "schema_path") else ""
    return DataValidationError(lines, schema_path, anomalies.uri)


class Executor(tfx_trainer.GenericExecutor):
    """The stock GenericExecutor after the data validation check."""

    def Do(self, input_dict: dict[str, list[Artifact]], output_dict: dict[str, list[Artifact]],  # noqa: N802
           exec_properties: dict[str, Any]) -> None:
        for anomalies in input_dict.get(DATA_VALIDATION_KEY) or []:
            error = refusal(anomalies)
            if error is not None:
                raise error
        super().Do(input_dict, output_dict, exec_properties)


class Trainer(TfxTrainer):
    """`tfx.components.Trainer(...)` plus `data_validation=` (an ExampleAnomalies channel)."""

    SPEC_CLASS = TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, run_fn: str, train_args: trainer_pb2.TrainArgs,
                 eval_args: trainer_pb2.EvalArgs, custom_config: dict[str, Any] | None = None,
                 data_validation: types.BaseChannel | None = None):
        # The stock constructor's spec for a `run_fn` Trainer of `examples` (what this project uses), plus the input.
        spec = TrainerSpec(examples=examples, train_args=train_args, eval_args=eval_args, run_fn=run_fn,
                           custom_config=json_utils.dumps(custom_config),
                           model=types.Channel(type=standard_artifacts.Model),
                           model_run=types.Channel(type=standard_artifacts.ModelRun),
                           **{DATA_VALIDATION_KEY: data_validation})
        base_component.BaseComponent.__init__(self, spec=spec)
