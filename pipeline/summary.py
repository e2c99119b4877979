"""What a pipeline run produced, in words: pushed or not (and why), where the model is, its FID/KID, the pictures to
look at, and the commands to serve it and open the web studio."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from dcgan import fileio, runtime
from pipeline.config import PipelineConfig
from pipeline.lineage import OUTPUT_EVENTS, MetadataGraph, describe_validation, lineage, open_store, properties


@dataclass
class RunSummary:
    pushed: bool
    version: str | None
    text: str


def _latest(graph: MetadataGraph, kind: str):
    executions = [e for e in graph.store.get_executions() if graph.execution_kind(e) == kind]
    return max(executions, key=lambda e: e.id) if executions else None


def validation_lines(graph: MetadataGraph) -> list[str]:
    """The data validation's result and files (the latest ExampleValidator execution), or nothing when it is off."""
    validator = _latest(graph, "ExampleValidator")
    anomalies = graph.artifacts_of(validator.id, OUTPUT_EVENTS).get("ExampleAnomalies", []) if validator else []
    if not anomalies:
        return []
    rows = dict(describe_validation(anomalies[0]))
    return [f"  data validation: {rows['result']}",
            f"  statistics:    {rows['statistics']}",
            f"  anomalies:     {rows['anomalies']}"]


def run_summary(config: PipelineConfig, wall_seconds: float | None = None) -> RunSummary:
    store = open_store(os.path.abspath(config.metadata_path))
    graph = MetadataGraph(store)
    pusher = _latest(graph, "Pusher")
    lines = []
    if wall_seconds is not None:
        cpu = runtime.cpu_info()
        lines.append(f"pipeline finished in {wall_seconds / 60:.1f} min (root {_shown(config.root)}) on {cpu.model}, "
                     f"{cpu.cores} cores, {cpu.isa}; {runtime.onednn_text()}")
    pushed_artifact = None
    if pusher is not None:
        pushed = graph.artifacts_of(pusher.id, OUTPUT_EVENTS).get("PushedModel", [])
        if pushed and properties(pushed[0]).get("pushed") == 1:
            pushed_artifact = pushed[0]
    evaluator = _latest(graph, "FidEvaluator")
    unchanged = False
    if pushed_artifact is None and evaluator is not None:
        blessing = graph.artifacts_of(evaluator.id, OUTPUT_EVENTS).get("ModelBlessing", [])
        unchanged = bool(blessing) and properties(blessing[0]).get("unchanged") == 1
        if unchanged:  # nothing changed since the model was pushed: describe that push
            earlier = [a for a in store.get_artifacts_by_type("PushedModel") if properties(a).get("pushed") == 1]
            pushed_artifact = max(earlier, key=lambda a: a.id) if earlier else None
    if pushed_artifact is None:
        reason = "the pipeline did not reach the Pusher"
        if evaluator is not None:
            blessing = graph.artifacts_of(evaluator.id, OUTPUT_EVENTS).get("ModelBlessing", [])
            if blessing:
                reason = str(properties(blessing[0]).get("reason", reason))
        lines += ["NOT PUSHED: the model was not blessed.", f"  reason: {reason}", *validation_lines(graph),
                  f"  details: .venv/bin/dcgan lineage --root {config.root}  (the last pushed model, if any)"]
        return RunSummary(False, None, "\n".join(lines))

    version = str(properties(pushed_artifact).get("pushed_version"))
    info = lineage(os.path.abspath(config.metadata_path), version)
    rows = {(s, f): v for s, f, v in info.rows}
    base = _shown(config.push_base)
    destination = rows.get(("pushed model", "destination"), fileio.join(base, version))
    cached = pusher.last_known_state == 5  # CACHED
    if unchanged or cached:
        headline = (f"UNCHANGED: nothing changed since model '{config.model_name}' version {version} was pushed "
                    f"({'all steps from the cache' if cached else 'data and training from the cache'}); "
                    "still serving it")
    else:
        headline = f"PUSHED model '{config.model_name}' version {version}"
    lines += [
        headline,
        f"  SavedModel:    {destination}",
        f"  FID:           {rows.get(('evaluation', 'FID'), '?')}",
        f"  FID/floor:     {floor_ratio_text(info.details.get('evaluation'))}",
        f"  KID:           {rows.get(('evaluation', 'KID'), '?')}",
        f"  samples:       {rows.get(('evaluation', 'sample grid'), '?')}",
        f"  training run:  {rows.get(('training', 'run directory'), '?')}/samples/  (grids as training went)",
        *([f"  resumed:       training went on from step {resumed} of an interrupted run (its checkpoint)"]
          if (resumed := (info.details.get("training") or {}).get("resumed_from_step")) else []),
        f"  ingest report: {rows.get(('data', 'ingest report'), '?')}",
        *validation_lines(graph),
        "",
        "Serve it (TF Serving gRPC :8500 and REST :8501 APIs):",
        f"  .venv/bin/dcgan serve --model_name {config.model_name} --model_base_path {base} "
        "--port 8500 --rest_api_port 8501",
        "Open the web studio (faces with their z, walks, arithmetic, attribute sliders) at http://127.0.0.1:8080/ :",
        f"  .venv/bin/dcgan studio --server 127.0.0.1:8500 --port 8080 --model-base-path {base}",
        "Generate from the command line, and see where the model came from:",
        "  .venv/bin/dcgan generate --server 127.0.0.1:8500 --n 16 --seed 7 --out grid.png",
        f"  .venv/bin/dcgan lineage --root {config.root}",
    ]
    return RunSummary(True, version, "\n".join(lines))


def floor_ratio(evaluation: dict[str, Any] | None) -> float | None:
    """FID / floor of an evaluation's metrics.json (the floor: training images vs the same eval images at the same
    N, what a perfect generator would score); None when either is missing."""
    metrics = (evaluation or {}).get("metrics") or {}
    fid, floor = metrics.get("fid"), metrics.get("fid_floor")
    if not isinstance(fid, (int, float)) or not isinstance(floor, (int, float)) or floor <= 0:
        return None
    return float(fid) / float(floor)


def floor_ratio_text(evaluation: dict[str, Any] | None) -> str:
    ratio = floor_ratio(evaluation)
    if ratio is None:
        return "? (no floor: the evaluation had no training split)"
    return f"{ratio:.2f}× the real-vs-real floor (1.00× = indistinguishable from real at this N)"


def _shown(path: str) -> str:
    """Local paths absolute; gs:// and s3:// URLs as they are."""
    return path if fileio.is_remote(path) else os.path.abspath(path)
