"""The TFX DAG and its runners: LocalDagRunner (default: embedded SQLite MLMD, Beam DirectRunner) and the Kubeflow
Pipelines V2 compiler.

    FaceExampleGen ──► Trainer (run_fn = components.trainer_module.run_fn) ──┬──► FidEvaluator ──► Pusher
         │                                                                   ├──► InfraCheck ─────┘
         └────────────────────────── examples ───────────────────────────────┘
    latest blessed model (Resolver) ──► FidEvaluator (baseline: no regression allowed beyond the allowance)

The Pusher is TFX's own component with components.pusher's executor: a version appears only when complete.
"""

from __future__ import annotations

import dataclasses
import os

from pipeline.config import PipelineConfig

NODE_IDS = ("FaceExampleGen", "Trainer", "latest_blessed_model_resolver", "FidEvaluator", "InfraCheck", "Pusher")


def create_pipeline(config: PipelineConfig, *, for_kubeflow: bool = False):
    """Build the `tfx.dsl.Pipeline` for `config` (validated here)."""
    from tfx import v1 as tfx

    from components.evaluator.component import FidEvaluator
    from components.infra_check import InfraCheck
    from components.ingest.component import FaceExampleGen
    from components.pusher import EXECUTOR_SPEC as PUSHER_EXECUTOR_SPEC

    config.validate()
    ingest = FaceExampleGen(source=config.data, size=config.train.model.size, fingerprint_source=not for_kubeflow,
                            **dataclasses.asdict(config.ingest))

    trainer = tfx.components.Trainer(
        run_fn="components.trainer_module.run_fn",
        examples=ingest.outputs["examples"],
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=config.train.steps),
        eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=0),
        custom_config={"train_config": config.train.to_dict(), "directions": config.directions.custom_config(),
                       "reference_stats": config.evaluation.reference_stats_config()},
    )

    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")

    evaluator = FidEvaluator(
        model=trainer.outputs["model"],
        examples=ingest.outputs["examples"],
        baseline_model=resolver.outputs["model"] if config.evaluation.regression_check else None,
        **config.evaluation.component_args(),
    )

    components = [ingest, trainer, resolver, evaluator]
    pusher_inputs = {"model": trainer.outputs["model"], "model_blessing": evaluator.outputs["blessing"]}
    if config.infra_check:
        infra = InfraCheck(model=trainer.outputs["model"], timeout_seconds=config.infra_timeout_seconds)
        components.append(infra)
        pusher_inputs["infra_blessing"] = infra.outputs["blessing"]
    pusher = tfx.components.Pusher(  # stock component, executor that publishes a version only when complete
        **pusher_inputs,
        custom_executor_spec=PUSHER_EXECUTOR_SPEC,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=_abs(config.push_base, for_kubeflow))),
    )
    components.append(pusher)

    metadata = None if for_kubeflow else tfx.orchestration.metadata.sqlite_metadata_connection_config(
        _abs(config.metadata_path, False))
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=_abs(config.pipeline_root, for_kubeflow),
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata,
        beam_pipeline_args=config.beam_pipeline_args(),
    )


def _abs(path: str, keep: bool) -> str:
    """Local paths become absolute (MLMD records them); remote ones (gs://, s3://...) and Kubeflow paths stay."""
    return path if keep or "://" in path else os.path.abspath(path)


def run_local(config: PipelineConfig) -> None:
    """Run the whole DAG in this process with TFX's LocalDagRunner."""
    from tfx import v1 as tfx

    from dcgan import fileio

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
        tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
    finally:
        if dask_cluster is not None:
            dask_cluster.close()


def compile_kubeflow(config: PipelineConfig, output: str, env: dict[str, str] | None = None) -> str:
    """Write the Kubeflow Pipelines V2 PipelineJob JSON for `config` (offline; nothing is submitted). `env`: variables
    set in every task's container (e.g. AWS_ENDPOINT_URL of a MinIO root; never secrets: those come from the
    cluster, e.g. a Kubernetes secret or the pods' service account)."""
    from tfx import v1 as tfx

    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=config.kubeflow_image),
        output_dir=os.path.dirname(os.path.abspath(output)),
        output_filename=os.path.basename(output),
    )
    runner.run(create_pipeline(config, for_kubeflow=True))
    _use_project_entrypoint(output, env or {})
    return output


def _use_project_entrypoint(path: str, env: dict[str, str]) -> None:
    """Point every TFX container task of the compiled spec at `pipeline.kubeflow_entrypoint` (TFX's entrypoint
    plus what this project needs, see there; arguments stay TFX's) and set `env` in its container."""
    import json

    from pipeline.kubeflow_entrypoint import COMMAND, TFX_ENTRYPOINT

    with open(path) as f:
        job = json.load(f)
    for executor in job["pipelineSpec"]["deploymentSpec"]["executors"].values():
        container = executor.get("container")
        if container and container.get("command") == ["python", "-m", TFX_ENTRYPOINT]:
            container["command"] = list(COMMAND)
        if container and env:
            container["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    with open(path, "w") as f:
        json.dump(job, f, indent=2, sort_keys=True)
        f.write("\n")
