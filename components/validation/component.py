"""The validation components: TFX's SchemaGen and ExampleValidator, each with this project's executor and one more
execution parameter (where the curatable schema copy goes; where the drift baseline lives and which schema file the
user edits). Subclasses, not new components: the MLMD types, the artifacts and their on-disk layout stay TFX's
(Schema `schema.pbtxt`, ExampleAnomalies `Split-<name>/SchemaDiff.pb` + `blessed`), so TFX tooling reads them.

    StatisticsGen (stock) ──► SchemaGen (infers + policy; writes <root>/schema.pbtxt) | ImportSchemaGen (stock)
            └─────────────────────────────► ExampleValidator ──► anomalies ──► Trainer (the gate)
"""

from __future__ import annotations

from tfx import types
from tfx.components.example_validator.component import ExampleValidator as TfxExampleValidator
from tfx.components.schema_gen.component import SchemaGen as TfxSchemaGen
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen as TfxImportSchemaGen
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts, standard_component_specs
from tfx.utils import json_utils

from components.validation import executors

CURATED_SCHEMA_PATH_KEY = "curated_schema_path"
SCHEMA_SHA256_KEY = "schema_sha256"
BASELINE_PATH_KEY = "baseline_path"
SCHEMA_PATH_KEY = "schema_path"


class SchemaGenSpec(standard_component_specs.SchemaGenSpec):
    PARAMETERS = {**standard_component_specs.SchemaGenSpec.PARAMETERS,
                  CURATED_SCHEMA_PATH_KEY: component_spec.ExecutionParameter(type=str, optional=True)}


class SchemaGen(TfxSchemaGen):
    """TFX's SchemaGen inferring with the project's policy (components.validation.schema_policy) and writing a copy
    to `curated_schema_path` (when that file does not exist yet) for the user to curate; later runs import it."""

    SPEC_CLASS = SchemaGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executors.SchemaGenExecutor)

    def __init__(self, statistics: types.BaseChannel, curated_schema_path: str = ""):
        # The stock constructor's spec (infer_feature_shape=True, no excluded split) plus the parameter.
        spec = SchemaGenSpec(statistics=statistics, infer_feature_shape=True, exclude_splits=json_utils.dumps([]),
                             schema=types.Channel(type=standard_artifacts.Schema),
                             curated_schema_path=curated_schema_path or None)
        base_component.BaseComponent.__init__(self, spec=spec)


class ImportSchemaGenSpec(standard_component_specs.ImportSchemaGenSpec):
    PARAMETERS = {**standard_component_specs.ImportSchemaGenSpec.PARAMETERS,
                  SCHEMA_SHA256_KEY: component_spec.ExecutionParameter(type=str, optional=True)}


class ImportSchemaGen(TfxImportSchemaGen):
    """TFX's ImportSchemaGen (stock executor: copies `schema_file` into the Schema artifact) whose cache key also
    holds the file's content hash (`schema_sha256`): the stock component's key is the path alone, so an edited
    schema (a user allowing an anomaly) would come from the cache unread."""

    SPEC_CLASS = ImportSchemaGenSpec

    def __init__(self, schema_file: str, schema_sha256: str = ""):
        spec = ImportSchemaGenSpec(schema_file=schema_file, schema_sha256=schema_sha256 or None,
                                   schema=types.Channel(type=standard_artifacts.Schema))
        base_component.BaseComponent.__init__(self, spec=spec)


class ExampleValidatorSpec(standard_component_specs.ExampleValidatorSpec):
    PARAMETERS = {**standard_component_specs.ExampleValidatorSpec.PARAMETERS,
                  BASELINE_PATH_KEY: component_spec.ExecutionParameter(type=str, optional=True),
                  SCHEMA_PATH_KEY: component_spec.ExecutionParameter(type=str, optional=True)}


class ExampleValidator(TfxExampleValidator):
    """TFX's ExampleValidator with environments, drift against `baseline_path`'s statistics, train/eval skew and
    the pictures (components.validation.executors.ExampleValidatorExecutor). `schema_path`: the schema file the
    user changes to allow an anomaly (named in the gate's message)."""

    SPEC_CLASS = ExampleValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executors.ExampleValidatorExecutor)

    def __init__(self, statistics: types.BaseChannel, schema: types.BaseChannel, baseline_path: str = "",
                 schema_path: str = ""):
        # The stock constructor's spec (no excluded split, no custom validation config) plus the parameters.
        spec = ExampleValidatorSpec(statistics=statistics, schema=schema, exclude_splits=json_utils.dumps([]),
                                    anomalies=types.Channel(type=standard_artifacts.ExampleAnomalies),
                                    baseline_path=baseline_path or None, schema_path=schema_path or None)
        base_component.BaseComponent.__init__(self, spec=spec)
