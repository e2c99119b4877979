"""`FidEvaluator`: the TFX component that gates a generator on FID before the stock Pusher pushes it.

Inputs: `model` (the candidate `Model`; the SavedModel at `<uri>/Format-Serving/` as a TFX Trainer writes it, or
directly at `<uri>`), `examples` (`Examples`: the eval split is the reference; the train split gives the floor and
the memorisation check) and, optionally, `baseline_model` (a `Model`, e.g. from a Resolver with
`LatestBlessedModelStrategy`), evaluated in the same run on the same images with the same seeds. Where no resolver
can run (open-source Kubeflow Pipelines), the parameter `baseline_base_path` names the serving store instead
(`<serving_root>/<model>`) and the baseline is the version it serves (`components.evaluator.baseline`); the log
and the blessing say where the baseline came from (`baseline_source`).

Outputs:
  * `blessing` (`ModelBlessing`): a `BLESSED` or `NOT_BLESSED` file (holding the reason), custom properties
    `blessed` (1/0), `current_model`, `current_model_id`, `baseline_model`, `baseline_model_id` (what the stock
    Evaluator writes: Pusher reads `blessed`, LatestBlessedModelStrategy reads `blessed` and `current_model_id`),
    `reason`, and the metrics.
  * `evaluation` (`FidEvaluation`, MLMD type `dcgan.FidEvaluation`): metrics.json, samples.png, memorization.png,
    memorization.json, with the metrics also as custom properties (`fid`, `fid_floor`, `kid_mean`, `kid_std`,
    `precision`, `recall`, `baseline_fid`, `num_samples`, `num_real`, `memorization_close_fraction`, ...) so they
    are in MLMD.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, channel, component_spec, standard_artifacts
from tfx.types.artifact import Artifact

from components.evaluator.baseline import find_store_baseline
from components.parameters import from_exec_properties, parameter_types, typed_values
from dcgan import fileio
from dcgan.interrupt import failing_step
from dcgan.metrics import evaluate as evallib
from dcgan.metrics.config import EvaluationConfig

log = logging.getLogger(__name__)

BLESSED_FILE = "BLESSED"
NOT_BLESSED_FILE = "NOT_BLESSED"


class FidEvaluation(Artifact):
    """One FID evaluation: metrics.json, samples.png, memorization.png, memorization.json."""

    # `<namespace>.<Title>`: the form Kubeflow Pipelines v2 requires of custom artifact types.
    TYPE_NAME = "dcgan.FidEvaluation"


# Execution parameters: every EvaluationConfig field (optional where it may be None), plus the split names.
_SETTINGS = parameter_types(EvaluationConfig)
# The store baseline: `baseline_base_path` (where the Pusher pushes) and an optional TF Serving model config whose
# `stable` label names the version to compare with.
_PARAMETERS = {**_SETTINGS, "eval_split": (str, False), "train_split": (str, False),
               "baseline_base_path": (str, True), "baseline_model_config": (str, True)}


class FidEvaluatorSpec(component_spec.ComponentSpec):
    PARAMETERS = {name: component_spec.ExecutionParameter(type=t, optional=optional)
                  for name, (t, optional) in _PARAMETERS.items()}
    INPUTS = {
        "model": component_spec.ChannelParameter(type=standard_artifacts.Model),
        "examples": component_spec.ChannelParameter(type=standard_artifacts.Examples),
        "baseline_model": component_spec.ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        "blessing": component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing),
        "evaluation": component_spec.ChannelParameter(type=FidEvaluation),
    }


def config_from_exec_properties(exec_properties: dict[str, Any]) -> EvaluationConfig:
    """The EvaluationConfig an execution was given (parameters TFX left out take EvaluationConfig's defaults)."""
    return EvaluationConfig(**from_exec_properties(exec_properties, _SETTINGS)).validate()


def _metric_properties(result: evallib.EvaluationResult) -> dict[str, float | int | str]:
    m = result.metrics
    props: dict[str, float | int | str] = {"num_samples": int(m["num_generated"]), "num_real": int(m["num_real"])}
    for key in ("fid", "fid_floor", "kid_mean", "kid_std", "precision", "recall"):
        if m.get(key) is not None:
            props[key] = float(m[key])
    if m.get("fid") is None:
        props["fid"] = float("nan")
    if result.baseline and result.baseline.get("fid") is not None:
        props["baseline_fid"] = float(result.baseline["fid"])
    if result.memorization and result.memorization.get("fraction_closer_than_heldout") is not None:
        props["memorization_close_fraction"] = float(result.memorization["fraction_closer_than_heldout"])
        props["memorization_median_distance_ratio"] = float(result.memorization["median_distance_ratio"])
    return props


def _set_property(artifact: Artifact, name: str, value: float | int | str) -> None:
    if isinstance(value, bool) or isinstance(value, int):
        artifact.set_int_custom_property(name, int(value))
    elif isinstance(value, float):
        artifact.set_float_custom_property(name, value)
    else:
        artifact.set_string_custom_property(name, str(value))


class Executor(base_executor.BaseExecutor):
    """Runs `dcgan.metrics.evaluate.evaluate_generator` and writes the blessing and the evaluation artifacts."""

    @staticmethod
    def _unchanged(model: Artifact, blessing: Artifact, evaluation: Artifact) -> None:
        reason = (f"unchanged: the candidate (model #{model.id}) is already the latest blessed model; it is not "
                  "evaluated or pushed again")
        log.info("FidEvaluator: %s", reason)
        fileio.makedirs(blessing.uri)
        fileio.makedirs(evaluation.uri)
        fileio.write_text_atomic(fileio.join(blessing.uri, NOT_BLESSED_FILE), reason + "\n")
        fileio.write_json_atomic(fileio.join(evaluation.uri, "metrics.json"),
                                 {"skipped": True, "reason": reason, "model": model.uri}, indent=2)
        for artifact in (blessing, evaluation):
            artifact.set_int_custom_property("blessed", 0)
            artifact.set_int_custom_property("unchanged", 1)
            artifact.set_string_custom_property("reason", reason)
        blessing.set_string_custom_property("current_model", model.uri)
        blessing.set_int_custom_property("current_model_id", model.id)

    @failing_step("FidEvaluator")  # SIGINT/SIGTERM: the execution fails and publishes nothing
    def Do(self, input_dict: dict[str, list[Artifact]], output_dict: dict[str, list[Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        fileio.ensure_filesystems(model.uri, examples.uri, *(a.uri for a in output_dict["evaluation"]))
        baselines = input_dict.get("baseline_model") or []
        baseline = baselines[0] if baselines else None
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        evaluation = artifact_utils.get_single_instance(output_dict["evaluation"])
        if baseline is not None and baseline.id == model.id:
            # A re-run with nothing changed: ingest and Trainer came from the cache, and the latest blessed model
            # (which the resolver only found because the first run blessed it) is this very model. Evaluating it
            # against itself proves nothing and blessing it again would make the Pusher push a duplicate version.
            self._unchanged(model, blessing, evaluation)
            return
        config = config_from_exec_properties(exec_properties)
        eval_split = exec_properties.get("eval_split") or "eval"
        train_split = exec_properties.get("train_split") or "train"
        baseline_uri, source = _baseline(baseline, exec_properties)
        log.info("FidEvaluator: %s", source)

        result = evallib.evaluate_generator(
            model.uri, examples.uri, evaluation.uri, config, baseline=baseline_uri,
            split=eval_split, train_split=train_split, progress=sys.stderr.isatty())
        log.info("FidEvaluator: %s", result.decision.reason)

        fileio.makedirs(blessing.uri)
        marker = BLESSED_FILE if result.blessed else NOT_BLESSED_FILE
        fileio.write_text_atomic(fileio.join(blessing.uri, marker), result.decision.reason + "\n")
        blessing.set_int_custom_property("blessed", 1 if result.blessed else 0)
        blessing.set_string_custom_property("current_model", model.uri)
        blessing.set_int_custom_property("current_model_id", model.id)
        if baseline is not None:
            blessing.set_int_custom_property("baseline_model_id", baseline.id)
        if baseline_uri is not None:
            blessing.set_string_custom_property("baseline_model", baseline_uri)
        blessing.set_string_custom_property("baseline_source", source)
        properties = _metric_properties(result)
        for artifact in (blessing, evaluation):
            artifact.set_string_custom_property("reason", result.decision.reason)
            for name, value in properties.items():
                _set_property(artifact, name, value)
        evaluation.set_int_custom_property("blessed", 1 if result.blessed else 0)


def _baseline(artifact: Artifact | None, exec_properties: dict[str, Any]) -> tuple[str | None, str]:
    """(the baseline model's URI or None, where it came from): the `baseline_model` input when one was resolved,
    else the serving store named by `baseline_base_path`, else none."""
    if artifact is not None:
        return artifact.uri, f"baseline: the latest blessed model in ML Metadata (model #{artifact.id}, {artifact.uri})"
    base_path = exec_properties.get("baseline_base_path")
    if base_path:
        fileio.ensure_filesystems(base_path)
        found = find_store_baseline(base_path, exec_properties.get("baseline_model_config") or None)
        return found.path, found.reason
    return None, "no baseline: none resolved in ML Metadata (first blessing) and no serving store named"


class FidEvaluator(base_component.BaseComponent):
    """Evaluate a generator with FID/KID/precision-recall against the eval split and bless it (or not).

    Args:
      model: the candidate `Model` channel (e.g. `trainer.outputs["model"]`).
      examples: the `Examples` channel (eval split = reference; train split = floor and memorisation check).
      baseline_model: optional `Model` channel, e.g. a `LatestBlessedModelStrategy` resolver's `model` output.
      baseline_base_path: without `baseline_model`, the serving store (`<serving_root>/<model>`) whose served
        version is the baseline (`components.evaluator.baseline`); `baseline_model_config`: its TF Serving model
        config, whose `stable` label wins over the newest version.
      eval_split, train_split: split names in `examples`.
      settings: `dcgan.metrics.config.EvaluationConfig` fields (num_samples, fid_threshold, max_fid_regression,
        num_real, seed, memorization_reference, kid_subsets, kid_subset_size, batch_size, ...), its defaults
        where not given; None turns an optional rule off. Validated here, at pipeline construction.
    """

    SPEC_CLASS = FidEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model: channel.BaseChannel, examples: channel.BaseChannel,
                 baseline_model: channel.BaseChannel | None = None, eval_split: str = "eval",
                 train_split: str = "train", baseline_base_path: str | None = None,
                 baseline_model_config: str | None = None, **settings: Any):
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise TypeError(f"FidEvaluator got unknown setting(s) {unknown}; EvaluationConfig has {sorted(_SETTINGS)}")
        config = EvaluationConfig(**settings).validate()  # fail at pipeline construction, not at run time
        params = typed_values(config.to_dict(), _SETTINGS)
        spec = FidEvaluatorSpec(
            model=model, examples=examples, baseline_model=baseline_model,
            blessing=channel.Channel(type=standard_artifacts.ModelBlessing),
            evaluation=channel.Channel(type=FidEvaluation),
            eval_split=eval_split, train_split=train_split, baseline_base_path=baseline_base_path,
            baseline_model_config=baseline_model_config, **params)
        super().__init__(spec=spec)
