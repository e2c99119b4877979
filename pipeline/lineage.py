"""Lineage of a pushed model, read from ML Metadata: which data, ingest report, training run, evaluation and blessings
produced it (`dcgan lineage`).

The walk follows MLMD events: PushedModel ← Pusher execution → its Model, ModelBlessing and InfraBlessing inputs;
Model ← Trainer execution → its Examples input, ModelRun output and training properties, and its data_validation
input (ExampleAnomalies: per-split result, anomalies.txt, statistics.html / .png); Examples ← FaceExampleGen
execution → its source and IngestReport; the FidEvaluator execution that read the Model → FidEvaluation metrics.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


class LineageError(LookupError):
    """No such metadata store / pushed model; the message says what exists."""


@dataclass
class Lineage:
    version: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (section, field, value)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, section: str, name: str, value: Any) -> None:
        if value is None or value == "":
            return
        if isinstance(value, float):
            value = f"{value:.4g}"
        self.rows.append((section, name, str(value)))

    def table(self) -> str:
        widths = [max(len(r[i]) for r in self.rows + [("section", "field", "value")]) for i in range(2)]
        lines = [f"{'section':{widths[0]}}  {'field':{widths[1]}}  value",
                 f"{'-' * widths[0]}  {'-' * widths[1]}  -----"]
        last = None
        for section, name, value in self.rows:
            shown = section if section != last else ""
            last = section
            lines.append(f"{shown:{widths[0]}}  {name:{widths[1]}}  {value}")
        return "\n".join(lines)


def open_store(metadata_path: str) -> metadata_store.MetadataStore:
    if not os.path.isfile(metadata_path):
        raise LineageError(f"no metadata store at {metadata_path} (run the pipeline first, or pass --root)")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _value(v: metadata_store_pb2.Value) -> Any:
    kind = v.WhichOneof("value")
    if kind == "struct_value":
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(v.struct_value)
    return getattr(v, kind) if kind else None


def properties(node) -> dict[str, Any]:
    """An MLMD artifact's or execution's properties and custom properties as plain Python values."""
    out = {k: _value(v) for k, v in node.properties.items()}
    out.update({k: _value(v) for k, v in node.custom_properties.items()})
    return out


class MetadataGraph:
    """Walks MLMD's event graph: who produced an artifact, who consumed it, what an execution read and wrote."""

    def __init__(self, store: metadata_store.MetadataStore):
        self.store = store
        self.artifact_types = {t.id: t.name for t in store.get_artifact_types()}
        self.execution_types = {t.id: t.name for t in store.get_execution_types()}

    def type_of(self, artifact) -> str:
        return self.artifact_types.get(artifact.type_id, "?")

    def producer(self, artifact_id: int):
        events = [e for e in self.store.get_events_by_artifact_ids([artifact_id]) if e.type in OUTPUT_EVENTS]
        if not events:
            return None
        return self.store.get_executions_by_id([events[0].execution_id])[0]

    def consumers(self, artifact_id: int) -> list:
        ids = sorted({e.execution_id for e in self.store.get_events_by_artifact_ids([artifact_id])
                      if e.type in INPUT_EVENTS})
        return self.store.get_executions_by_id(ids) if ids else []

    def artifacts_of(self, execution_id: int, kinds: tuple) -> dict[str, list]:
        events = [e for e in self.store.get_events_by_execution_ids([execution_id]) if e.type in kinds]
        arts = {a.id: a for a in self.store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))}
        out: dict[str, list] = {}
        for e in events:
            out.setdefault(self.type_of(arts[e.artifact_id]), []).append(arts[e.artifact_id])
        return out

    def execution_kind(self, execution) -> str:
        return self.execution_types.get(execution.type_id, "?").rsplit(".", 1)[-1]


def describe_validation(anomalies) -> list[tuple[str, str]]:
    """(field, value) rows of an ExampleAnomalies artifact of the ExampleValidator (components/validation): the
    result per split, where to allow an anomaly, and the files to look at."""
    props = properties(anomalies)
    blessed = props.get("blessed") or {}
    blessed = blessed if isinstance(blessed, dict) else {}
    failed = sorted(split for split, value in blessed.items() if value != 1)
    count = int(props.get("num_anomalies", 0) or 0)
    result = (f"passed ({', '.join(sorted(blessed))}: no anomalies)" if blessed and not failed
              else f"FAILED: {count} anomal{'y' if count == 1 else 'ies'} in {', '.join(failed) or '?'}")
    if props.get("baseline"):
        result += "; drift checked against the last validated drop"
    rows = [("result", result)]
    if props.get("schema_path"):
        rows.append(("schema", str(props["schema_path"])))
    rows += [("anomalies", os.path.join(anomalies.uri, "anomalies.txt")),
             ("statistics", os.path.join(anomalies.uri, "statistics.html") + " (TFDV), "
              + os.path.join(anomalies.uri, "statistics.png"))]
    return rows


def pushed_models(store: metadata_store.MetadataStore) -> list:
    pushed = [a for a in store.get_artifacts_by_type("PushedModel") if properties(a).get("pushed") == 1]
    return sorted(pushed, key=lambda a: str(properties(a).get("pushed_version", "")))


def lineage(metadata_path: str, version: str | None = None) -> Lineage:
    """The lineage of the pushed model `version` (default: the newest push)."""
    store = open_store(metadata_path)
    graph = MetadataGraph(store)
    pushed = pushed_models(store)
    if not pushed:
        raise LineageError(f"no model has been pushed according to {metadata_path}")
    if version is None:
        target = pushed[-1]
    else:
        matches = [a for a in pushed if str(properties(a).get("pushed_version")) == str(version)]
        if not matches:
            known = ", ".join(str(properties(a).get("pushed_version")) for a in pushed)
            raise LineageError(f"no pushed version {version}; pushed versions: {known}")
        target = matches[-1]
    props = properties(target)
    result = Lineage(str(props.get("pushed_version")))
    result.add("pushed model", "version", props.get("pushed_version"))
    result.add("pushed model", "destination", props.get("pushed_destination"))

    pusher = graph.producer(target.id)
    inputs = graph.artifacts_of(pusher.id, INPUT_EVENTS) if pusher else {}
    model = (inputs.get("Model") or [None])[0]
    if model is None:
        return result
    result.add("pushed model", "from model artifact", model.uri)

    # training
    trainer = graph.producer(model.id)
    examples = None
    if trainer is not None:
        tprops = properties(trainer)
        outputs = graph.artifacts_of(trainer.id, OUTPUT_EVENTS)
        run = (outputs.get("ModelRun") or [None])[0]
        config = json.loads(tprops.get("custom_config") or "{}").get("train_config", {})
        train_args = json.loads(tprops.get("train_args") or "{}")
        m = config.get("model", {})
        result.add("training", "execution", f"#{trainer.id} ({'cached' if trainer.last_known_state == 5 else 'ran'})")
        result.add("training", "architecture", f"{m.get('size')}x{m.get('size')}, z={m.get('z_dim')}, "
                                               f"ngf={m.get('ngf')}, ndf={m.get('ndf')}, kernel={m.get('kernel_size')}")
        result.add("training", "recipe", f"batch {config.get('batch_size')}, Adam lr={config.get('learning_rate')} "
                                         f"beta1={config.get('beta1')}, EMA {config.get('ema_decay')}, "
                                         f"{config.get('precision')}")
        result.add("training", "steps (train_args)", train_args.get("num_steps") or config.get("steps"))
        if run is not None:
            result.add("training", "run directory", run.uri)
            summary_path = os.path.join(run.uri, "training_summary.json")
            if os.path.isfile(summary_path):
                summary = json.load(open(summary_path))
                result.details["training"] = summary
                result.add("training", "steps done", summary.get("steps"))
                result.add("training", "final d_loss", summary.get("d_loss"))
                result.add("training", "final g_loss", summary.get("g_loss"))
                result.add("training", "images/s", summary.get("images_per_sec"))
                result.add("training", "training images", summary.get("num_examples"))
        trainer_inputs = graph.artifacts_of(trainer.id, INPUT_EVENTS)
        examples = (trainer_inputs.get("Examples") or [None])[0]
        for anomalies in trainer_inputs.get("ExampleAnomalies") or []:
            for name, value in describe_validation(anomalies):
                result.add("data validation", name, value)

    # data
    if examples is not None:
        eprops = properties(examples)
        result.add("data", "source", eprops.get("source"))
        result.add("data", "examples", examples.uri)
        result.add("data", "images in", eprops.get("num_input"))
        result.add("data", "train / eval", f"{eprops.get('num_train')} / {eprops.get('num_eval')}")
        result.add("data", "rejected", eprops.get("num_rejected", 0))
        ingest = graph.producer(examples.id)
        if ingest is not None:
            iprops = properties(ingest)
            result.add("data", "ingest", f"size {iprops.get('size')}, mode {iprops.get('mode')}, "
                                         f"eval_ratio {iprops.get('eval_ratio')}, seed {iprops.get('seed')}")
            outputs = graph.artifacts_of(ingest.id, OUTPUT_EVENTS)
            report = next((a for name, arts in outputs.items() if name.endswith("IngestReport") for a in arts), None)
            if report is not None:
                result.add("data", "ingest report", os.path.join(report.uri, "ingest_report.txt"))

    # evaluation and blessings
    evaluations = []  # the FidEvaluation artifacts of this model that hold metrics (not "unchanged" re-runs)
    for execution in graph.consumers(model.id):
        if graph.execution_kind(execution) != "FidEvaluator":
            continue
        outputs = graph.artifacts_of(execution.id, OUTPUT_EVENTS)
        evaluations += [a for name, arts in outputs.items() if name.endswith("FidEvaluation") for a in arts
                        if "fid" in properties(a)]
    for evaluation in sorted(evaluations, key=lambda a: a.id)[-1:]:
        if evaluation is not None:
            ev = properties(evaluation)
            result.add("evaluation", "FID", f"{ev.get('fid', float('nan')):.2f} at N={ev.get('num_samples')} "
                                            f"(floor {ev.get('fid_floor', float('nan')):.2f}: real vs real, same N)")
            result.add("evaluation", "KID", f"{ev.get('kid_mean', float('nan')):.4f} ± "
                                            f"{ev.get('kid_std', float('nan')):.4f}")
            result.add("evaluation", "precision / recall", f"{ev.get('precision', 0.0):.3f} / "
                                                           f"{ev.get('recall', 0.0):.3f}")
            result.add("evaluation", "sample grid", os.path.join(evaluation.uri, "samples.png"))
            metrics_path = os.path.join(evaluation.uri, "metrics.json")
            if os.path.isfile(metrics_path):
                result.details["evaluation"] = json.load(open(metrics_path))
    blessing = (inputs.get("ModelBlessing") or [None])[0]
    if blessing is not None:
        bp = properties(blessing)
        result.add("blessing", "model blessed", "yes" if bp.get("blessed") == 1 else "no")
        result.add("blessing", "reason", bp.get("reason"))
    infra = (inputs.get("InfraBlessing") or [None])[0]
    if infra is not None:
        ip = properties(infra)
        result.add("blessing", "infra check", ("passed: " if ip.get("blessed") == 1 else "failed: ")
                   + str(ip.get("reason", "")))
    return result
