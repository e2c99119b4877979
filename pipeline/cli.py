"""`dcgan pipeline run|compile` and `dcgan lineage` (registered through the `dcgan.commands` entry point).
Light at import time: TFX is imported inside the command functions."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time


def _add_config_args(p: argparse.ArgumentParser) -> None:
    # pipeline.config.PRESETS, spelled out: importing the config here would slow every `dcgan` command's start
    p.add_argument("--preset", choices=("smoke", "quick", "standard", "full"), default="quick",
                   help="smoke (CI), quick (the ≤12-minute CPU demo, 32×32), standard (64×64, ≤45 minutes on 2 "
                        "cores), full (GPU-sized); default quick")
    p.add_argument("--root", help="pipeline root (artifacts + metadata.sqlite); default runs/<preset>")
    p.add_argument("--data", help="FaceExampleGen source: folder, CelebA-style zip, glob or avatars:N:SEED")
    p.add_argument("--serving-root", help="push destination root (default <root>/serving)")
    p.add_argument("--model-name", help="model name under the serving root (default dcgan)")
    p.add_argument("--steps", type=int, help="training steps (= --set train.steps=N)")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="override any config value, e.g. --set evaluation.fid_threshold=150 (repeatable); "
                        "sections: ingest, train, evaluation, directions, beam, validation; top-level fields "
                        "without a section")
    p.add_argument("--show-config", action="store_true", help="print the resolved config as JSON and exit")


def _config(args: argparse.Namespace):
    from pipeline.config import preset

    config = preset(args.preset)
    # Every flag that was given counts, 0 and "" included: the config's validation decides what is allowed (e.g.
    # --steps 0 is refused, --workers 0 means one worker per core).
    assignments = []
    for flag, key in (("root", "root"), ("data", "data"), ("serving_root", "serving_root"),
                      ("model_name", "model_name"), ("steps", "train.steps"), ("runner", "beam.runner"),
                      ("workers", "beam.workers")):
        value = getattr(args, flag, None)
        if value is not None:
            assignments.append(f"{key}={value}")
    if getattr(args, "no_cache", False):
        assignments.append("enable_cache=false")
    if getattr(args, "image", None):
        assignments.append(f"kubeflow_image={args.image}")
    return config.override(assignments + args.assignments).validate()


def register(subparsers) -> None:
    pipeline = subparsers.add_parser("pipeline", help="run the TFX pipeline locally or compile it for Kubeflow")
    sub = pipeline.add_subparsers(dest="pipeline_command", metavar="ACTION")
    sub.required = True

    run = sub.add_parser("run", help="run the whole pipeline with TFX's LocalDagRunner (SQLite MLMD, Beam)",
                         description="ingest → validate the data (statistics, schema, anomalies: a bad drop stops "
                                     "here, exit 4) → train → evaluate (FID gate) → infra check → push, on this "
                                     "machine")
    _add_config_args(run)
    run.add_argument("--runner", choices=("direct", "multiprocess", "dask"),
                     help="Beam runner for ingest: DirectRunner in-process (default), multi-process, or Dask")
    run.add_argument("--workers", type=int, help="Beam workers for multiprocess/dask")
    run.add_argument("--no-cache", action="store_true", help="re-execute every component")
    run.set_defaults(func=_cmd_run)

    comp = sub.add_parser("compile", help="compile the pipeline for Kubeflow Pipelines (open source) or Vertex AI",
                          description="--target kfp (default): a PipelineSpec YAML for open-source Kubeflow "
                                      "Pipelines (upload it with kfp.Client().upload_pipeline or the UI); --target "
                                      "vertex: a PipelineJob JSON for Vertex AI Pipelines (aiplatform.PipelineJob)")
    _add_config_args(comp)
    comp.add_argument("--kubeflow", action="store_true", required=True, help="target Kubeflow Pipelines (V2)")
    comp.add_argument("--target", choices=("kfp", "vertex"), default="kfp",
                      help="kfp: open-source Kubeflow Pipelines, PipelineSpec YAML (default); vertex: Vertex AI "
                           "Pipelines, PipelineJob JSON")
    comp.add_argument("--output", help="file to write (default pipeline.yaml for kfp, pipeline.json for vertex)")
    comp.add_argument("--image", help="container image for every step (default: the config's kubeflow_image)")
    comp.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                      help="environment variable of every step's container, e.g. AWS_ENDPOINT_URL=http://minio:9000 "
                           "for an S3-compatible root (not for secrets; repeatable)")
    comp.set_defaults(func=_cmd_compile)

    lin = subparsers.add_parser("lineage", help="what produced a pushed model: data, training, evaluation, blessing")
    lin.add_argument("--root", default="runs/quick", help="pipeline root holding metadata.sqlite (default runs/quick; "
                     "for a gs:// or s3:// root, the local MLMD cache of that root)")
    lin.add_argument("--metadata", help="path of metadata.sqlite (overrides --root)")
    lin.add_argument("--version", help="pushed version (default: the newest)")
    lin.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lin.set_defaults(func=_cmd_lineage)


def _cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.show_config:
        print(config.to_json())
        return 0
    from pipeline.pipeline import run_local
    from pipeline.summary import run_summary

    _progress_logging()
    started = time.time()
    print(f"pipeline {config.name}: preset {config.preset}, data {config.data}, root {config.root}", file=sys.stderr)
    from dcgan.runtime import cpu_info, describe_tensorflow

    print(f"machine: {cpu_info().describe()}; {describe_tensorflow()}", file=sys.stderr)
    from components.validation.report import DataValidationError
    from dcgan.interrupt import Interrupted, StepInterrupted, signal_name, stop_on_signals

    try:
        with stop_on_signals():  # Ctrl-C / SIGTERM: the step in progress fails; a second signal exits at once
            run_local(config)
    except DataValidationError as e:  # the Trainer's gate (components/validation/trainer.py), raised through TFX
        print(f"\n{e}", file=sys.stderr)
        return e.exit_code
    except StepInterrupted as e:
        print(f"dcgan pipeline run: {e}", file=sys.stderr)
        return e.exit_code
    except Interrupted as e:
        print(f"dcgan pipeline run: stopped by {signal_name(e.signum)} between steps; no step was left half done. "
              "Run the pipeline again to go on (finished steps come from the cache).", file=sys.stderr)
        return e.exit_code
    summary = run_summary(config, wall_seconds=time.time() - started)
    print(summary.text)
    return 0 if summary.pushed else 3


class _DropNoise(logging.Filter):
    """TFX 1.16 warns 'ArtifactQuery.property_predicate is not supported' once per channel resolution."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "property_predicate is not supported" not in record.getMessage()


def _progress_logging() -> None:
    """Show the project's progress lines (ingest counts, training steps, evaluation stages) during a run."""
    for name in ("dcgan", "components", "pipeline"):
        if logging.getLogger(name).getEffectiveLevel() > logging.INFO:
            logging.getLogger(name).setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropNoise())
    logging.getLogger("absl").addFilter(_DropNoise())


def _cmd_compile(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.show_config:
        print(config.to_json())
        return 0
    from pipeline.kfp_spec import load
    from pipeline.pipeline import compile_kubeflow

    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"dcgan pipeline compile: error: --env {item!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        env[name] = value
    output = args.output or ("pipeline.yaml" if args.target == "kfp" else "pipeline.json")
    suffix = output.rsplit(".", 1)[-1].lower() if "." in output else ""
    if args.target == "kfp" and suffix not in ("yaml", "yml"):
        print(f"dcgan pipeline compile: error: --output {output!r}: open-source Kubeflow Pipelines takes a .yaml/.yml "
              "package (a PipelineSpec); for Vertex AI's PipelineJob JSON use --target vertex", file=sys.stderr)
        return 2
    if args.target == "vertex" and suffix != "json":
        print(f"dcgan pipeline compile: error: --output {output!r}: the Vertex AI PipelineJob is JSON (.json)",
              file=sys.stderr)
        return 2
    path = compile_kubeflow(config, output, env, target=args.target)
    compiled = load(path)
    spec = compiled.get("pipelineSpec", compiled)
    tasks = spec.get("root", {}).get("dag", {}).get("tasks", {})
    what = ("PipelineSpec for open-source Kubeflow Pipelines" if args.target == "kfp"
            else "PipelineJob for Vertex AI Pipelines")
    print(f"wrote {path}: {what} '{config.name}', {len(tasks)} tasks ({', '.join(sorted(tasks))}), "
          f"image {config.kubeflow_image}")
    return 0


def _cmd_lineage(args: argparse.Namespace) -> int:
    from pipeline.config import PipelineConfig
    from pipeline.lineage import LineageError, lineage

    path = args.metadata or PipelineConfig(root=args.root).metadata_path  # s3:// roots keep MLMD in a local cache
    try:
        result = lineage(path, args.version)
    except LineageError as e:
        print(f"dcgan lineage: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"version": result.version, "rows": result.rows, "details": result.details}, indent=2,
                         default=str))
    else:
        print(result.table())
    return 0
