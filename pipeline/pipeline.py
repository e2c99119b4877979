"""The TFX DAG and its runners: LocalDagRunner (default: embedded SQLite MLMD, Beam DirectRunner) and the Kubeflow
Pipelines V2 compiler, for open-source Kubeflow Pipelines (`kfp`) or Vertex AI Pipelines (`vertex`).

    FaceExampleGen ──► StatisticsGen ──► SchemaGen | ImportSchemaGen ──► ExampleValidator ──► anomalies
         │                                                                                     │ (the gate)
         ├──────────► Trainer (run_fn = components.trainer_module.run_fn) ◄────────────────────┘
         │               ├──► FidEvaluator ──► Pusher
         │               └──► InfraCheck ─────┘
         └──── examples ────► FidEvaluator
    baseline ──► FidEvaluator (no regression allowed beyond the allowance)

Data validation (components/validation; off with validation.enabled=false): the stock StatisticsGen; the schema is
imported from `config.schema_path` (stock ImportSchemaGen) when that file exists, else inferred with the project's
policy and written there for the user to curate (SchemaGen with components.validation's executor); the
ExampleValidator checks every split in its environment, drift against the last validated drop and train/eval skew;
the Trainer refuses a drop with anomalies (DataValidationError) before any training.

The baseline: locally and on Vertex, TFX's latest-blessed-model Resolver (an ML Metadata query); on open-source
Kubeflow Pipelines, whose backend runs no resolver executors, the FidEvaluator reads the serving store the Pusher
pushes to (components.evaluator.baseline). The Pusher is TFX's own component with components.pusher's executor: a
version appears only when complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

from dcgan import fileio
from pipeline.config import PipelineConfig

NODE_IDS = ("FaceExampleGen", "StatisticsGen", "SchemaGen", "ImportSchemaGen", "ExampleValidator", "Trainer",
            "latest_blessed_model_resolver", "FidEvaluator", "InfraCheck", "Pusher")
# Where the image (Dockerfile: WORKDIR /app, COPY pipeline pipeline) has the repository's pipeline/ folder: the
# curated schemas' path in a Kubeflow task.
CONTAINER_PIPELINE_DIR = "/app/pipeline"
TARGETS = ("kfp", "vertex")  # compile targets: open-source Kubeflow Pipelines, Vertex AI Pipelines


def create_pipeline(config: PipelineConfig, *, target: str = "local"):
    """Build the `tfx.dsl.Pipeline` for `config` (validated here), to run locally or to compile for a `TARGETS`
    backend (no MLMD connection, paths as given; `kfp`: no Resolver, the evaluator reads the serving store).

    TFX's classes come from their own modules, not from the `tfx.v1` facade: importing `tfx.v1` imports every
    extension with it (Vertex AI's client library alone: ~7 s of each `dcgan pipeline run`'s start, measured with
    `python -X importtime`), and the local pipeline needs none of them; nor the TFX components it does not run
    (pipeline/startup.py)."""
    from pipeline.startup import defer_tfx_components

    defer_tfx_components()
    from tfx.components.pusher.component import Pusher
    from tfx.dsl.components.common.resolver import Resolver
    from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
    from tfx.orchestration import metadata
    from tfx.orchestration.pipeline import Pipeline
    from tfx.proto import pusher_pb2, trainer_pb2
    from tfx.types import standard_artifacts
    from tfx.types.channel import Channel

    from components.evaluator.component import FidEvaluator
    from components.infra_check import InfraCheck
    from components.ingest.component import FaceExampleGen
    from components.pusher import EXECUTOR_SPEC as PUSHER_EXECUTOR_SPEC
    from components.validation.trainer import Trainer

    config.validate()
    if target not in ("local", *TARGETS):
        raise ValueError(f"target={target!r} is not one of {('local', *TARGETS)}")
    for_kubeflow = target != "local"
    ingest = FaceExampleGen(source=config.data, size=config.train.model.size, fingerprint_source=not for_kubeflow,
                            **dataclasses.asdict(config.ingest))

    validation = _validation_components(config, ingest.outputs["examples"], for_kubeflow)
    trainer = Trainer(  # TFX's Trainer; with `data_validation`, it refuses a drop that did not pass
        data_validation=validation[-1].outputs["anomalies"] if validation else None,
        run_fn="components.trainer_module.run_fn",
        examples=ingest.outputs["examples"],
        train_args=trainer_pb2.TrainArgs(splits=["train"], num_steps=config.train.steps),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"], num_steps=0),
        custom_config={"train_config": config.train.to_dict(), "directions": config.directions.custom_config(),
                       "reference_stats": config.evaluation.reference_stats_config(),
                       # where an interrupted run waits for the next run of the pipeline (trainer_module.run_fn)
                       "resume_root": fileio.join(config.pipeline_root, "Trainer", "interrupted")},
    )

    components = [ingest, *validation, trainer]
    baseline: dict = {}
    if config.evaluation.regression_check and target == "kfp":
        baseline = {"baseline_base_path": config.push_base,
                    "baseline_model_config": config.serving_model_config or None}
    elif config.evaluation.regression_check:
        resolver = Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        ).with_id("latest_blessed_model_resolver")
        components.append(resolver)
        baseline = {"baseline_model": resolver.outputs["model"]}

    evaluator = FidEvaluator(
        model=trainer.outputs["model"],
        examples=ingest.outputs["examples"],
        **baseline,
        **config.evaluation.component_args(),
    )
    components.append(evaluator)
    pusher_inputs = {"model": trainer.outputs["model"], "model_blessing": evaluator.outputs["blessing"]}
    if config.infra_check:
        infra = InfraCheck(model=trainer.outputs["model"], timeout_seconds=config.infra_timeout_seconds)
        components.append(infra)
        pusher_inputs["infra_blessing"] = infra.outputs["blessing"]
    pusher = Pusher(  # stock component, executor that publishes a version only when complete
        **pusher_inputs,
        custom_executor_spec=PUSHER_EXECUTOR_SPEC,
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=_abs(config.push_base, for_kubeflow))),
    )
    components.append(pusher)

    connection = None if for_kubeflow else metadata.sqlite_metadata_connection_config(
        _abs(config.metadata_path, False))
    return Pipeline(
        pipeline_name=config.name,
        pipeline_root=_abs(config.pipeline_root, for_kubeflow),
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=connection,
        beam_pipeline_args=config.beam_pipeline_args(),
    )


def _validation_components(config: PipelineConfig, examples, for_kubeflow: bool) -> list:
    """StatisticsGen, the schema (imported or inferred: PipelineConfig.schema_path) and the ExampleValidator; none
    when validation is off. On Kubeflow, the curated avatars schema is read from the image, and a schema that is not
    given explicitly is inferred (the compile does not look into the root)."""
    if not config.validation.enabled:
        return []
    from tfx.components.statistics_gen.component import StatisticsGen

    from components.validation.component import ExampleValidator, ImportSchemaGen, SchemaGen
    from pipeline.config import AVATARS_SCHEMA

    statistics = StatisticsGen(examples=examples)
    # the schema: imported (its content hashed into the cache key, so an edit is read) or inferred
    path = shown = config.schema_path
    curated = path == AVATARS_SCHEMA
    if curated and for_kubeflow:
        path = f"{CONTAINER_PIPELINE_DIR}/schemas/{os.path.basename(AVATARS_SCHEMA)}"
        shown = os.path.relpath(AVATARS_SCHEMA, os.path.dirname(os.path.dirname(AVATARS_SCHEMA)))
    if curated or config.validation.schema or (not for_kubeflow and fileio.exists(path)):
        local = AVATARS_SCHEMA if curated else path  # the file as this machine sees it, for its content hash
        sha256 = hashlib.sha256(fileio.read_bytes(local)).hexdigest() if fileio.exists(local) else ""
        schema = ImportSchemaGen(schema_file=_abs(path, for_kubeflow), schema_sha256=sha256)
    else:
        schema = SchemaGen(statistics=statistics.outputs["statistics"], curated_schema_path=_abs(path, for_kubeflow))
    validator = ExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"],
        baseline_path=_abs(fileio.join(config.pipeline_root, "ExampleValidator", "baseline"), for_kubeflow),
        schema_path=_abs(shown, for_kubeflow))
    return [statistics, schema, validator]


def _abs(path: str, keep: bool) -> str:
    """Local paths become absolute (MLMD records them); remote ones (gs://, s3://...) and Kubeflow paths stay."""
    return path if keep or "://" in path else os.path.abspath(path)


def run_local(config: PipelineConfig) -> None:
    """Run the whole DAG in this process with TFX's LocalDagRunner."""
    from pipeline.startup import defer_tfx_components

    defer_tfx_components()  # before the runner: its input resolution imports tfx.components.evaluator
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    for path in (config.root, config.data, config.serving_root):
        fileio.check_s3_reachable(path)  # a clear error in seconds, not tensorflow-io's minutes of retries
        fileio.ensure_filesystem(path)  # s3://: tensorflow-io registered in this process, where executors run
    fileio.makedirs(config.root)
    os.makedirs(os.path.dirname(os.path.abspath(config.metadata_path)), exist_ok=True)
    fileio.write_text_atomic(fileio.join(config.root, "pipeline_config.json"), config.to_json())
    dask_cluster = None
    if config.beam.runner == "dask" and not config.beam.dask_address:
        from distributed import LocalCluster

        dask_cluster = LocalCluster(n_workers=config.beam.workers or os.cpu_count() or 1, threads_per_worker=1,
                                    processes=True,
                                    dashboard_address=None)
        config = config.override([f"beam.dask_address={dask_cluster.scheduler_address}"])
    try:
        LocalDagRunner().run(create_pipeline(config))
    finally:
        if dask_cluster is not None:
            dask_cluster.close()


def compile_kubeflow(config: PipelineConfig, output: str, env: dict[str, str] | None = None,
                     target: str = "kfp") -> str:
    """Write the compiled pipeline for `target` (offline; nothing is submitted) and return its path:
      * `kfp` — open-source Kubeflow Pipelines: a PipelineSpec YAML (schema 2.1.0, `runtimeValue.constant`
        parameters, no resolver tasks, `defaultPipelineRoot` = the config's pipeline root), checked against what that
        backend accepts (`pipeline.kfp_spec.open_source_problems`) before it is written;
      * `vertex` — Vertex AI Pipelines: a PipelineJob JSON (TFX's default schema 2.0, with the latest-blessed-model
        resolver tasks that Vertex's backend runs).
    `env`: variables set in every task's container (e.g. AWS_ENDPOINT_URL of a MinIO root; never secrets: those
    come from the cluster, e.g. a Kubernetes secret or the pods' service account)."""
    import json
    import tempfile

    from tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner import KubeflowV2DagRunner, KubeflowV2DagRunnerConfig

    from pipeline import kfp_spec

    if target not in TARGETS:
        raise ValueError(f"target={target!r} is not one of {TARGETS}")
    with tempfile.TemporaryDirectory() as tmp:
        KubeflowV2DagRunner(
            config=KubeflowV2DagRunnerConfig(
                default_image=config.kubeflow_image, use_pipeline_spec_2_1=target == "kfp"),
            output_dir=tmp, output_filename="pipeline.json",
        ).run(create_pipeline(config, target=target))
        with open(os.path.join(tmp, "pipeline.json")) as f:
            job = json.load(f)
    _use_project_entrypoint(job["pipelineSpec"], env or {})
    _retry_the_trainer(job["pipelineSpec"], config.kubeflow_trainer_retries,
                       config.kubeflow_trainer_retry_backoff_seconds)
    if target == "kfp":
        text = kfp_spec.open_source_yaml(job["pipelineSpec"], pipeline_root=_abs(config.pipeline_root, True))
    else:
        text = json.dumps(job, indent=2, sort_keys=True) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fileio.write_text_atomic(output, text)
    return output


def _retry_the_trainer(spec: dict, retries: int, backoff_seconds: int) -> None:
    """Give the Trainer task of the compiled `spec` (changed in place) PipelineSpec's retryPolicy: Vertex AI, Kubeflow
    Pipelines and kfp.local run a failed attempt again, and an attempt stopped by SIGTERM (preemption, eviction) has
    parked its checkpointed run, which the retry resumes (components/trainer_module.py). TFX's compiler sets none."""
    if retries > 0:
        spec["root"]["dag"]["tasks"]["Trainer"]["retryPolicy"] = {
            "maxRetryCount": retries, "backoffDuration": f"{backoff_seconds}s", "backoffFactor": 2.0,
            "backoffMaxDuration": "300s"}


def _use_project_entrypoint(spec: dict, env: dict[str, str]) -> None:
    """Point every TFX container task of the compiled `spec` (a PipelineSpec dict, changed in place) at
    `pipeline.kubeflow_entrypoint` (TFX's entrypoint plus what this project needs, see there; arguments stay TFX's)
    and set `env` in its container."""
    from pipeline.kubeflow_entrypoint import COMMAND, TFX_ENTRYPOINT

    for executor in spec["deploymentSpec"]["executors"].values():
        container = executor.get("container")
        if container and container.get("command") == ["python", "-m", TFX_ENTRYPOINT]:
            container["command"] = list(COMMAND)
        if container and env:
            container["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
