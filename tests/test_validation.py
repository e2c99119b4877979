"""Data validation's parts on real TFDV statistics (components/validation): the schema policy, the curated avatars
schema, the SchemaGen and ExampleValidator executors (TFX's on-disk formats, environments, drift, skew, the
baseline) and the Trainer's gate. The drops are built-in avatars measured with dcgan.quality, as the ingest does;
the whole pipeline on real drops is tests/test_data_validation.py."""

from __future__ import annotations

import os

import numpy as np
import pytest

tfdv = pytest.importorskip("tensorflow_data_validation")

from components.validation import report, schema_policy  # noqa: E402
from pipeline.config import AVATARS_SCHEMA  # noqa: E402

N_TRAIN, N_EVAL = 96, 24


def _drop(seed: int, n: int, start: int = 0, change=None, drop_attribute: str | None = None, size: int = 32):
    """(train/eval rows as the ingest writes them, inputs rows) of avatars `start`..`start+n` of `seed`."""
    import pandas as pd

    from dcgan import avatars, quality

    rows, inputs = [], []
    for i in range(start, start + n):
        image, attributes = avatars.generate_avatar(seed, i, size)
        if change is not None:
            image = change(image)
        row = {"image": b"\x89PNG (statistics do not decode it)", "id": avatars.avatar_id(seed, i),
               "source": f"avatars:{n}:{seed}", "sha256": f"{seed}-{i}", "height": size, "width": size,
               "schema_version": 2, "source/height": size, "source/width": size}
        row.update({f"quality/{k}": v for k, v in quality.image_features(image).items()})
        row.update({f"attr/{k}": v for k, v in attributes.items() if k != drop_attribute})
        rows.append(row)
        inputs.append({"id": row["id"], "ingest/outcome": "accepted", "source/height": size, "source/width": size})
    return pd.DataFrame(rows), pd.DataFrame(inputs)


def _statistics(seed: int, change=None, drop_attribute: str | None = None, outcome=None) -> dict:
    """{split: DatasetFeatureStatisticsList} of one drop (train, eval, inputs), computed by TFDV."""
    train, inputs = _drop(seed, N_TRAIN, change=change, drop_attribute=drop_attribute)
    evaluation, more_inputs = _drop(seed, N_EVAL, start=N_TRAIN, change=change, drop_attribute=drop_attribute)
    import pandas as pd

    inputs = pd.concat([inputs, more_inputs], ignore_index=True)
    if outcome is not None:
        inputs["ingest/outcome"] = [outcome(i) for i in range(len(inputs))]
    return {split: tfdv.generate_statistics_from_dataframe(df)
            for split, df in (("train", train), ("eval", evaluation), ("inputs", inputs))}


def greyscale(image: np.ndarray) -> np.ndarray:
    y = (image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
    return np.dstack([y] * 3)


def dark(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float64) * 0.3).round().astype(np.uint8)


def dimmer(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float64) * 0.75).round().astype(np.uint8)


@pytest.fixture(scope="module")
def clean() -> dict:
    return _statistics(seed=0)


@pytest.fixture(scope="module")
def curated():
    return schema_policy.read_schema_text(AVATARS_SCHEMA)


def _validate(stats: dict, schema, baseline=None) -> dict[str, dict[str, str]]:
    out = {}
    for split, s in stats.items():
        anomalies = tfdv.validate_statistics(
            s, schema, environment=schema_policy.environment_of(split),
            previous_statistics=baseline if split == "train" else None,
            serving_statistics=stats["eval"] if split == "train" else None)
        out[split] = {name: info.description for name, info in anomalies.anomaly_info.items()}
    return out


# -- the policy -------------------------------------------------------------------------------------------------------
def test_the_inferred_schema_puts_each_feature_in_its_environment_and_follows_the_policy(clean):
    schema = schema_policy.infer_schema(clean)
    features = {f.name: f for f in schema.feature}
    assert list(schema.default_environment) == ["TRAINING", "INPUTS"]
    assert list(features["quality/brightness"].not_in_environment) == ["INPUTS"]
    assert list(features["ingest/outcome"].not_in_environment) == ["TRAINING"]
    assert not features["id"].not_in_environment and not features["source/height"].not_in_environment
    assert features["source/height"].presence.min_fraction == 0.0, "an undecodable input has no source size"
    assert list(features["ingest/outcome"].string_domain.value) == ["accepted"]
    assert features["ingest/outcome"].distribution_constraints.min_domain_mass == 0.5
    assert list(features["quality/colour"].string_domain.value) == ["colour"]
    assert features["quality/exposure"].distribution_constraints.min_domain_mass == 0.9
    for name in ("id", "sha256", "source"):
        assert not features[name].HasField("domain") and not features[name].HasField("string_domain"), name
    assert features["quality/sharpness"].drift_comparator.jensen_shannon_divergence.threshold == \
        schema_policy.DRIFT_JSD
    assert features["quality/colour"].skew_comparator.infinity_norm.threshold == schema_policy.SKEW_LINF
    assert all(f.lifecycle_stage != 2 for f in schema.feature), "no feature may be left DEPRECATED"
    assert schema_policy.policy_problems(schema) == []
    assert _validate(clean, schema) == {"train": {}, "eval": {}, "inputs": {}}, "a schema must pass its own drop"


def test_the_curated_avatars_schema_follows_the_policy_and_passes_a_clean_drop(curated, clean):
    assert schema_policy.policy_problems(curated) == []
    assert _validate(clean, curated) == {"train": {}, "eval": {}, "inputs": {}}
    assert _validate(_statistics(seed=3), curated, baseline=clean["train"]) == {"train": {}, "eval": {},
                                                                                 "inputs": {}}, \
        "another clean drop must not drift from this one"


@pytest.mark.parametrize("kind, feature", [("greyscale", "quality/colour"), ("dark", "quality/exposure"),
                                           ("no_attribute", "attr/Smiling"), ("no_face", "ingest/outcome")])
def test_the_curated_avatars_schema_stops_a_bad_drop(curated, kind, feature):
    stats = _statistics(seed=1, change={"greyscale": greyscale, "dark": dark}.get(kind),
                        drop_attribute="Smiling" if kind == "no_attribute" else None,
                        outcome=(lambda i: "accepted" if i % 3 == 0 else "no_face") if kind == "no_face" else None)
    found = _validate(stats, curated)
    split = "inputs" if kind == "no_face" else "train"
    assert feature in found[split], f"{kind}: no anomaly on {feature}: {found}"


def test_drift_against_the_baseline_catches_a_shift_that_stays_inside_the_ranges(clean, curated):
    dimmed = _statistics(seed=2, change=dimmer)  # a quarter darker: still "normal" exposure, inside every range
    assert _validate(dimmed, curated) == {"train": {}, "eval": {}, "inputs": {}}
    with_baseline = _validate(dimmed, curated, baseline=clean["train"])
    assert "quality/brightness" in with_baseline["train"], with_baseline


# -- executors ---------------------------------------------------------------------------------------------------------
def _statistics_artifact(tmp_path, name: str, stats: dict):
    from tfx.types import artifact_utils, standard_artifacts

    artifact = standard_artifacts.ExampleStatistics()
    artifact.uri = str(tmp_path / name)
    artifact.split_names = artifact_utils.encode_split_names(list(stats))
    for split, s in stats.items():
        folder = os.path.join(artifact.uri, f"Split-{split}")
        os.makedirs(folder)
        with open(os.path.join(folder, "FeatureStats.pb"), "wb") as f:
            f.write(s.SerializeToString())
    return artifact


def _schema_artifact(tmp_path, schema):
    from tfx.types import standard_artifacts

    artifact = standard_artifacts.Schema()
    artifact.uri = str(tmp_path / "schema")
    os.makedirs(artifact.uri)
    with open(os.path.join(artifact.uri, "schema.pbtxt"), "w") as f:
        f.write(schema_policy.schema_text(schema))
    return artifact


def _validate_with_executor(tmp_path, name: str, stats: dict, schema_artifact, baseline: str):
    from tfx.types import standard_artifacts

    from components.validation.executors import ExampleValidatorExecutor

    anomalies = standard_artifacts.ExampleAnomalies()
    anomalies.uri = str(tmp_path / f"anomalies-{name}")
    ExampleValidatorExecutor().Do(
        {"statistics": [_statistics_artifact(tmp_path, f"stats-{name}", stats)], "schema": [schema_artifact]},
        {"anomalies": [anomalies]}, {"exclude_splits": "[]", "baseline_path": baseline,
                                      "schema_path": "pipeline/schemas/avatars.pbtxt"})
    return anomalies


def test_the_validator_writes_tfx_artifacts_and_keeps_the_baseline_of_a_passing_drop_only(tmp_path, clean, curated):
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    from components.validation.trainer import refusal

    schema = _schema_artifact(tmp_path, curated)
    baseline = str(tmp_path / "baseline")
    passed = _validate_with_executor(tmp_path, "clean", clean, schema, baseline)
    assert passed.get_json_value_custom_property("blessed") == {"train": 1, "eval": 1, "inputs": 1}
    for split in ("train", "eval", "inputs"):  # TFX's layout: Split-<name>/SchemaDiff.pb, an Anomalies proto
        path = os.path.join(passed.uri, f"Split-{split}", "SchemaDiff.pb")
        assert not anomalies_pb2.Anomalies.FromString(open(path, "rb").read()).anomaly_info
    files = set(os.listdir(passed.uri))
    assert {report.ANOMALIES_FILE, report.HTML_FILE, report.PICTURE_FILE} <= files
    assert "no anomalies" in open(os.path.join(passed.uri, report.ANOMALIES_FILE)).read()
    assert "facets-overview" in open(os.path.join(passed.uri, report.HTML_FILE)).read()
    assert open(os.path.join(passed.uri, report.PICTURE_FILE), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert refusal(passed) is None
    kept = open(os.path.join(baseline, "statistics.pb"), "rb").read()
    assert kept == clean["train"].SerializeToString()

    failed = _validate_with_executor(tmp_path, "dark", _statistics(seed=1, change=dark), schema, baseline)
    assert failed.get_json_value_custom_property("blessed")["train"] == 0
    assert open(os.path.join(baseline, "statistics.pb"), "rb").read() == kept, "a failed drop replaced the baseline"
    text = open(os.path.join(failed.uri, report.ANOMALIES_FILE)).read()
    assert "train: quality/exposure:" in text and "drift against" in text, text
    assert "last validated drop" in open(os.path.join(failed.uri, report.HTML_FILE)).read()

    error = refusal(failed)  # the Trainer's gate
    assert isinstance(error, report.DataValidationError) and error.exit_code == 4
    message = str(error)
    assert message.startswith("DATA VALIDATION FAILED")
    assert any(line.startswith("train: quality/exposure: ") for line in error.lines), error.lines
    assert "allow it in pipeline/schemas/avatars.pbtxt" in message and report.DOCS in message


def test_the_trainer_refuses_before_it_calls_run_fn(tmp_path, curated):
    from components.validation.trainer import Executor

    schema = _schema_artifact(tmp_path, curated)
    failed = _validate_with_executor(tmp_path, "grey", _statistics(seed=1, change=greyscale), schema, "")
    with pytest.raises(report.DataValidationError, match="quality/colour"):
        Executor().Do({"examples": [], "data_validation": [failed]}, {}, {})  # no run_fn: it must not get there


def test_schemagen_infers_with_the_policy_and_writes_a_copy_to_curate_once(tmp_path, clean):
    from tfx.types import standard_artifacts

    from components.validation.executors import SchemaGenExecutor

    copy = str(tmp_path / "root" / "schema.pbtxt")
    for run in range(2):
        out = standard_artifacts.Schema()
        out.uri = str(tmp_path / f"schema-{run}")
        SchemaGenExecutor().Do({"statistics": [_statistics_artifact(tmp_path, f"s{run}", clean)]},
                               {"schema": [out]}, {"exclude_splits": "[]", "curated_schema_path": copy})
        inferred = schema_policy.read_schema_text(os.path.join(out.uri, "schema.pbtxt"))
        assert schema_policy.policy_problems(inferred) == []
        if run == 0:
            assert schema_policy.read_schema_text(copy) == inferred
            with open(copy, "a") as f:
                f.write("# curated by the user\n")
    assert open(copy).read().endswith("# curated by the user\n"), "the user's copy must never be overwritten"


def test_the_gate_message_names_each_anomaly_and_where_to_allow_it():
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["quality/colour"]
    info.short_description = "Unexpected string values"
    info.description = "Examples contain values missing from the schema: greyscale (~80%)."
    lines = report.anomaly_lines({"train": anomalies})
    assert lines == ["train: quality/colour: Unexpected string values — Examples contain values missing from the "
                     "schema: greyscale (~80%)."]
    message = report.gate_message(lines, "/r/schema.pbtxt")
    assert "1 anomaly" in message and "allow it in /r/schema.pbtxt" in message and "validation.enabled=false" in message


# -- the pipeline's wiring ---------------------------------------------------------------------------------------------
def _nodes(config) -> dict:
    from pipeline.pipeline import create_pipeline

    return {c.id: c for c in create_pipeline(config).components}


def test_the_schema_rule_curated_for_avatars_imported_when_given_or_written_else_inferred(tmp_path):
    from dcgan.config import ConfigError
    from pipeline.config import preset

    smoke = preset("smoke").override([f"root={tmp_path / 'root'}"])
    nodes = _nodes(smoke)
    assert nodes["ImportSchemaGen"].exec_properties["schema_file"] == AVATARS_SCHEMA
    assert nodes["ExampleValidator"].exec_properties["schema_path"] == AVATARS_SCHEMA
    trainer = nodes["Trainer"]
    assert trainer.inputs["data_validation"].producer_component_id == "ExampleValidator"

    photos = smoke.override([f"data={tmp_path / 'photos'}"])
    nodes = _nodes(photos)  # a source of the user's own: inferred on the first run, written to <root>/schema.pbtxt
    assert "ImportSchemaGen" not in nodes
    assert nodes["SchemaGen"].exec_properties["curated_schema_path"] == str(tmp_path / "root" / "schema.pbtxt")
    os.makedirs(tmp_path / "root", exist_ok=True)
    (tmp_path / "root" / "schema.pbtxt").write_text(schema_policy.schema_text(schema_policy.read_schema_text(
        AVATARS_SCHEMA)))
    nodes = _nodes(photos)  # ... and imported from there afterwards
    assert nodes["ImportSchemaGen"].exec_properties["schema_file"] == str(tmp_path / "root" / "schema.pbtxt")
    before = nodes["ImportSchemaGen"].exec_properties["schema_sha256"]
    with open(tmp_path / "root" / "schema.pbtxt", "a") as f:
        f.write("# the user allowed something\n")
    assert _nodes(photos)["ImportSchemaGen"].exec_properties["schema_sha256"] != before, \
        "an edited schema must not come from the cache (the stock cache key is the path alone)"

    given = smoke.override([f"validation.schema={tmp_path / 'root' / 'schema.pbtxt'}"])
    assert _nodes(given)["ImportSchemaGen"].exec_properties["schema_file"] == str(tmp_path / "root" / "schema.pbtxt")
    with pytest.raises(ConfigError, match="validation.schema"):
        smoke.override([f"validation.schema={tmp_path / 'missing.pbtxt'}"]).validate()

    off = _nodes(smoke.override(["validation.enabled=false"]))
    assert not {"StatisticsGen", "ImportSchemaGen", "SchemaGen", "ExampleValidator"} & set(off)
    assert off["Trainer"].inputs.get("data_validation") is None
