"""What open-source Kubeflow Pipelines accepts, checked before a compiled spec is written, and its YAML form.

The KFP API server (kubeflow/pipelines `backend/src/apiserver/template/v2_template.go`) takes a package whose YAML
document parses as a `PipelineSpec` (protojson: unknown fields are errors), with schema version 2.1.0, a pipeline
name of lower-case alphanumerics, '-' or '.', and a root DAG. Its Argo compiler and driver (`backend/src/v2`) then
refuse `resolver` executors ("resolver executors not implemented"; only container and importer executors run) and
read input parameters only from `runtimeValue.constant` ("param runtime value spec ... not implemented" for the
deprecated `constantValue` TFX writes in schema 2.0). Vertex AI Pipelines accepts both; its spec is TFX's PipelineJob
JSON and is not checked here.

Light at import time: the proto comes from kfp-pipeline-spec, which every stack installs with kfp.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

SCHEMA_VERSION = "2.1.0"
# The API server's rule for pipeline names, anchored here (its own regexp is unanchored, which accepts more).
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_EXECUTOR_KINDS = ("container", "importer")
COMPONENT_PREFIX = "comp-"


class SpecError(ValueError):
    """A compiled spec that open-source Kubeflow Pipelines would refuse; the message lists why."""


def _paths(node: Any, path: str = "") -> Iterator[str]:
    """The dotted path of every value in a JSON-like tree."""
    yield path
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _paths(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, f"{path}[{i}]")


def open_source_problems(spec: Mapping[str, Any]) -> list[str]:
    """Why open-source Kubeflow Pipelines would refuse `spec` (a PipelineSpec as a dict), one line each; [] = none."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    problems = []
    if "pipelineSpec" in spec or "runtimeConfig" in spec:
        return ["this is a Vertex AI PipelineJob (pipelineSpec + runtimeConfig), not a PipelineSpec: compile with "
                "--target kfp"]
    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    except json_format.ParseError as e:
        problems.append(f"does not parse as a PipelineSpec: {e}")
    if spec.get("schemaVersion") != SCHEMA_VERSION:
        problems.append(f"schemaVersion is {spec.get('schemaVersion')!r}; the KFP API server takes {SCHEMA_VERSION!r} "
                        "only")
    name = (spec.get("pipelineInfo") or {}).get("name", "")
    if not _NAME.match(name or ""):
        problems.append(f"pipelineInfo.name {name!r} is not lower-case alphanumerics, '-' or '.'")
    if not (spec.get("root") or {}).get("dag", {}).get("tasks"):
        problems.append("the root DAG has no tasks")
    for label, executor in ((spec.get("deploymentSpec") or {}).get("executors") or {}).items():
        kinds = [k for k in executor if k in _EXECUTOR_KINDS]
        if not kinds:
            problems.append(f"executor {label} is a {'/'.join(executor) or 'empty'} executor; the open-source backend "
                            f"runs only {' and '.join(_EXECUTOR_KINDS)} executors")
    for path in _paths(spec):
        if path.endswith(".constantValue") or path == "constantValue":
            problems.append(f"{path}: deprecated constantValue (the backend reads runtimeValue.constant)")
    for name, component in (spec.get("components") or {}).items():
        for side in ("inputDefinitions", "outputDefinitions"):
            for key, parameter in ((component.get(side) or {}).get("parameters") or {}).items():
                if "parameterType" not in parameter:
                    problems.append(f"components.{name}.{side}.parameters.{key}: no parameterType (the deprecated "
                                    "'type' field is not read by the backend)")
    return problems


def _with_kfp_component_names(spec: Mapping[str, Any]) -> dict[str, Any]:
    """`spec` with its components named as the KFP compiler names them (`comp-<name>`; TFX uses the bare node id).
    Only the references change; engines derive task folder names from them (kfp.local strips the `comp-` prefix,
    which turned TFX's `Pusher` into `r`)."""
    spec = json.loads(json.dumps(spec))
    renamed = {name: name if name.startswith(COMPONENT_PREFIX) else COMPONENT_PREFIX + name
               for name in spec.get("components") or {}}
    spec["components"] = {renamed[name]: c for name, c in (spec.get("components") or {}).items()}
    for task in ((spec.get("root") or {}).get("dag") or {}).get("tasks", {}).values():
        ref = task.get("componentRef") or {}
        if ref.get("name") in renamed:
            ref["name"] = renamed[ref["name"]]
    return spec


def open_source_yaml(spec: Mapping[str, Any], pipeline_root: str | None = None) -> str:
    """The PipelineSpec YAML to upload to open-source Kubeflow Pipelines, with `defaultPipelineRoot` set and the
    KFP compiler's component names; raises SpecError when the spec is not one the backend accepts (see
    `open_source_problems`)."""
    spec = _with_kfp_component_names(spec)
    if pipeline_root:
        spec["defaultPipelineRoot"] = pipeline_root
    problems = open_source_problems(spec)
    if problems:
        raise SpecError("not a pipeline open-source Kubeflow Pipelines accepts: " + "; ".join(problems))
    tasks = ", ".join(sorted(spec["root"]["dag"]["tasks"]))
    header = (f"# PIPELINE DEFINITION (Kubeflow Pipelines PipelineSpec, schema {SCHEMA_VERSION})\n"
              f"# Name: {spec['pipelineInfo']['name']}\n# Tasks: {tasks}\n"
              "# Upload: kfp.Client(host=...).upload_pipeline(this_file, pipeline_name=...) or the KFP UI\n")
    return header + yaml.safe_dump(spec, sort_keys=True, default_flow_style=False, width=120)


def load(path: str) -> dict[str, Any]:
    """A compiled file: PipelineSpec YAML (`--target kfp`) or PipelineJob JSON (`--target vertex`)."""
    with open(path) as f:
        return yaml.safe_load(f)  # JSON is YAML
