"""The executors of the validation components (components.validation.component).

`SchemaGenExecutor`: TFX's SchemaGen, but inferred per environment with the project's policy
(components.validation.schema_policy.infer_schema) and copied to the curatable path on the first run.

`ExampleValidatorExecutor`: TFX's ExampleValidator (`tfdv.validate_statistics` per split, `Split-<name>/SchemaDiff.pb`,
the `blessed` custom property {split: 1/0} as TFX sets it), extended where TFX's has no option for it:
  * each split in its schema environment (TRAINING for train/eval, INPUTS for inputs);
  * the train split also against the last validated drop's train statistics (drift comparators) and against this
    drop's eval split (skew comparators);
  * `anomalies.txt`, `statistics.html` (TFDV's Facets view: train vs eval, then train vs the baseline) and
    `statistics.png` (components.validation.picture) in the artifact;
  * when every split passes, this drop's train statistics become the baseline (`<baseline_path>/statistics.pb`,
    written atomically; a drop that fails never replaces it).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from tfx.components.example_validator import executor as tfx_validator
from tfx.components.schema_gen import executor as tfx_schema_gen
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.proto.orchestration import execution_result_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.types.artifact import Artifact
from tfx.utils import io_utils, json_utils, writer_utils

from components.validation import report, schema_policy
from dcgan import fileio
from dcgan.interrupt import failing_step

log = logging.getLogger(__name__)

BASELINE_STATS_FILE = "statistics.pb"  # a DatasetFeatureStatisticsList (binary), the train split's
BASELINE_INFO_FILE = "baseline.json"


def load_split_statistics(stats_artifact: Artifact, exclude: list[str] | None = None) -> dict[str, Any]:
    """{split: DatasetFeatureStatisticsList} of an ExampleStatistics artifact, in its split order."""
    return {split: stats_artifact_utils.load_statistics(stats_artifact, split).proto()
            for split in artifact_utils.decode_split_names(stats_artifact.split_names)
            if split not in (exclude or [])}


def _exclude_splits(exec_properties: dict[str, Any]) -> list[str]:
    exclude = json_utils.loads(exec_properties.get(standard_component_specs.EXCLUDE_SPLITS_KEY, "null")) or []
    if not isinstance(exclude, list):
        raise ValueError(f"exclude_splits must be a list, got {exclude!r}")
    return exclude


class SchemaGenExecutor(tfx_schema_gen.Executor):
    """Infer the schema from every split in its environment, apply the policy, write it as TFX does
    (`<artifact>/schema.pbtxt`) and, when `curated_schema_path` names a file that does not exist yet, there too."""

    @failing_step("SchemaGen")  # SIGINT/SIGTERM: the execution fails and publishes nothing
    def Do(self, input_dict: dict[str, list[Artifact]], output_dict: dict[str, list[Artifact]],  # noqa: N802
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        stats_artifact = artifact_utils.get_single_instance(input_dict[standard_component_specs.STATISTICS_KEY])
        stats = load_split_statistics(stats_artifact, _exclude_splits(exec_properties))
        schema = schema_policy.infer_schema(stats)
        output_uri = os.path.join(artifact_utils.get_single_uri(output_dict[standard_component_specs.SCHEMA_KEY]),
                                  tfx_schema_gen.DEFAULT_FILE_NAME)
        io_utils.write_pbtxt_file(output_uri, schema)
        log.info("SchemaGen: inferred schema (splits %s, the project's policy) written to %s", sorted(stats),
                 output_uri)
        curated = exec_properties.get("curated_schema_path")
        if curated and not fileio.exists(curated):
            text = (f"# Inferred by the pipeline's SchemaGen from {stats_artifact.uri} on "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')}, with the project's policy (docs/data.md).\n"
                    "# Curate it (ranges, domains, thresholds); the next run imports this file.\n"
                    + schema_policy.schema_text(schema))
            fileio.makedirs(os.path.dirname(curated) or ".")
            fileio.write_text_atomic(curated, text)
            log.info("SchemaGen: a copy to curate: %s (imported by the next run)", curated)


class ExampleValidatorExecutor(tfx_validator.Executor):
    """See the module docstring."""

    @failing_step("ExampleValidator")  # SIGINT/SIGTERM: the execution fails and publishes nothing
    def Do(self, input_dict: dict[str, list[Artifact]], output_dict: dict[str, list[Artifact]],  # noqa: N802
           exec_properties: dict[str, Any]) -> execution_result_pb2.ExecutorOutput:
        import tensorflow_data_validation as tfdv

        self._log_startup(input_dict, output_dict, exec_properties)
        stats_artifact = artifact_utils.get_single_instance(input_dict[standard_component_specs.STATISTICS_KEY])
        stats = load_split_statistics(stats_artifact, _exclude_splits(exec_properties))
        anomalies_artifact = artifact_utils.get_single_instance(output_dict[standard_component_specs.ANOMALIES_KEY])
        anomalies_artifact.split_names = artifact_utils.encode_split_names(list(stats))
        anomalies_artifact.span = stats_artifact.span
        schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
            artifact_utils.get_single_uri(input_dict[standard_component_specs.SCHEMA_KEY])))
        baseline_dir = exec_properties.get("baseline_path") or ""
        fileio.ensure_filesystems(anomalies_artifact.uri, *([baseline_dir] if baseline_dir else []))
        baseline, baseline_info = load_baseline(baseline_dir)

        results: dict[str, Any] = {}
        blessed: dict[str, int] = {}
        for split, split_stats in stats.items():
            train = split == "train"
            anomalies = tfdv.validate_statistics(
                split_stats, schema, environment=schema_policy.environment_of(split),
                previous_statistics=baseline if train else None,
                serving_statistics=stats.get("eval") if train else None)
            split_uri = artifact_utils.get_split_uri([anomalies_artifact], split)
            writer_utils.write_anomalies(os.path.join(split_uri, tfx_validator.DEFAULT_FILE_NAME), anomalies)
            results[split] = anomalies
            passed = not anomalies.anomaly_info and not anomalies.HasField("dataset_anomaly_info")
            blessed[split] = tfx_validator.BLESSED_VALUE if passed else tfx_validator.NOT_BLESSED_VALUE
            log.info("ExampleValidator: split %s (%s): %s", split, schema_policy.environment_of(split),
                     "no anomalies" if passed else f"{len(anomalies.anomaly_info)} anomalous feature(s)")
        anomalies_artifact.set_json_value_custom_property(tfx_validator.ARTIFACT_PROPERTY_BLESSED_KEY, blessed)

        lines = report.anomaly_lines(results)
        schema_path = exec_properties.get("schema_path") or ""
        anomalies_artifact.set_string_custom_property("schema_path", schema_path)
        anomalies_artifact.set_int_custom_property("num_anomalies", len(lines))
        anomalies_artifact.set_string_custom_property("baseline", baseline_info.get("statistics", ""))
        base_uri = anomalies_artifact.uri
        checked = ("drift against " + baseline_info["statistics"]) if baseline is not None else "no drift baseline yet"
        text = [f"data validation of {stats_artifact.uri}: splits {', '.join(stats)}; schema: "
                f"{schema_path or 'the pipeline schema artifact'}; {checked}; skew train vs eval"
                f"{'' if 'eval' in stats else ' (no eval split)'}"]
        text += lines or ["no anomalies"]
        fileio.write_text_atomic(fileio.join(base_uri, report.ANOMALIES_FILE), "\n".join(text) + "\n")
        self._write_views(stats, baseline, base_uri)

        if baseline_dir and all(v == tfx_validator.BLESSED_VALUE for v in blessed.values()) and "train" in stats:
            save_baseline(baseline_dir, stats["train"], stats_artifact.uri)
            log.info("ExampleValidator: every split passed; its train statistics are the drift baseline now (%s)",
                     baseline_dir)
        output = execution_result_pb2.ExecutorOutput()
        output.output_artifacts[standard_component_specs.ANOMALIES_KEY].artifacts.append(
            anomalies_artifact.mlmd_artifact)
        return output

    @staticmethod
    def _write_views(stats: dict[str, Any], baseline: Any, base_uri: str) -> None:
        from tensorflow_data_validation.utils.display_util import get_statistics_html

        from components.validation.picture import draw_statistics_png

        train = stats.get("train") or next(iter(stats.values()))
        parts = ["<html><head><meta charset='utf-8'><title>Data validation statistics</title></head><body>",
                 "<h2>This drop: train vs eval</h2>",
                 get_statistics_html(train, stats.get("eval"), lhs_name="train", rhs_name="eval")]
        if baseline is not None:
            parts += ["<h2>This drop's train split vs the last validated drop's (the drift baseline)</h2>",
                      get_statistics_html(train, baseline, lhs_name="this drop", rhs_name="baseline")]
        if "inputs" in stats:
            parts += ["<h2>Listed inputs (the ingest's outcome per item)</h2>",
                      get_statistics_html(stats["inputs"], lhs_name="inputs")]
        parts.append("</body></html>")
        fileio.write_text_atomic(fileio.join(base_uri, report.HTML_FILE), "\n".join(parts))
        other, other_name = (baseline, "last validated drop (train)") if baseline is not None else (
            stats.get("eval"), "this drop (eval)")
        fileio.write_bytes_atomic(fileio.join(base_uri, report.PICTURE_FILE),
                                  draw_statistics_png(train, other, "this drop (train)", other_name))


def load_baseline(baseline_dir: str) -> tuple[Any, dict[str, Any]]:
    """(the baseline's DatasetFeatureStatisticsList or None, its baseline.json) under `baseline_dir`."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    if not baseline_dir:
        return None, {}
    path = fileio.join(baseline_dir, BASELINE_STATS_FILE)
    if not fileio.exists(path):
        return None, {}
    stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(fileio.read_bytes(path))
    info_path = fileio.join(baseline_dir, BASELINE_INFO_FILE)
    info = json.loads(fileio.read_bytes(info_path)) if fileio.exists(info_path) else {}
    info["statistics"] = path
    return stats, info


def save_baseline(baseline_dir: str, train_stats: Any, source: str) -> None:
    """Make `train_stats` the drift baseline: the info first, the statistics (what is read) last, each atomic."""
    fileio.makedirs(baseline_dir)
    fileio.write_json_atomic(fileio.join(baseline_dir, BASELINE_INFO_FILE),
                             {"statistics_artifact": source, "written": time.strftime("%Y-%m-%dT%H:%M:%S")},
                             indent=2)
    fileio.write_bytes_atomic(fileio.join(baseline_dir, BASELINE_STATS_FILE), train_stats.SerializeToString())
