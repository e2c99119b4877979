"""The TFX Trainer module: `run_fn` turns the Trainer's FnArgs into a `dcgan.train` run and a SavedModel export.

Use it as `tfx.components.Trainer(run_fn="components.trainer_module.run_fn", ...)` (the package is installed, so no
module-file wheel is built). `custom_config["train_config"]` is a `TrainConfig` dict (pipeline/config.py);
`train_args.num_steps` overrides its step count. The run directory (checkpoints, TensorBoard logs, sample grids,
config.json, metrics.jsonl) is the Trainer's ModelRun artifact; the generator SavedModel (EMA weights when kept)
goes to `serving_model_dir` with `assets.extra/training_summary.json`.

Multi-worker training (`TrainConfig.strategy="multi_worker_mirrored"`; TFX passes the cluster's `TF_CONFIG` through
to every worker, e.g. Vertex AI training): every worker runs `run_fn` and trains, only the chief writes the run
directory and the export; the other workers keep their files under `<run>/workertemp_<task_id>` (deleted at the end)
and return once the chief's export is complete. The run directory must be on storage every worker sees (an object
store, a shared volume).

Interrupted (SIGINT, SIGTERM: Ctrl-C, an evicted or preempted pod), training finishes its step and checkpoints;
the run directory is parked under `custom_config["resume_root"]` (`<pipeline root>/Trainer/interrupted/<key>/run`,
outside the outputs TFX deletes when an execution fails) and the execution fails with `StepInterrupted` (nothing
exported). The next execution with the same TrainConfig and data (`resume_key`: every value but the step count), a
retried Kubeflow task or a re-run whose ingest came from the cache, moves it back and continues from the
checkpoint; the export it then makes is bit-identical to an uninterrupted run's.

Right after the export, attribute directions (dcgan.directions) are computed from the labelled training examples and
stored as `assets.extra/directions.json` beside the SavedModel, with the classifier that fitted them and the
independent judge that graded them (`assets.extra/attribute_classifier/`, `attribute_judge/`);
`custom_config["directions"]` switches this: True (the default), False, or a dict of
`dcgan.directions.DirectionsConfig` options (e.g. {"samples": 1000}). Data without attribute labels skips it with a
logged note.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from typing import Any

from dcgan import fileio

log = logging.getLogger(__name__)

SUMMARY_FILE = "training_summary.json"
CHIEF_EXPORT_WAIT_S = 1800.0  # how long a non-chief worker waits for the chief's export (see wait_for_chief_export)


def _train_config(fn_args: Any):
    from dcgan.config import TrainConfig

    custom = fn_args.custom_config or {}
    if "train_config" not in custom:
        raise ValueError("custom_config['train_config'] is missing: the pipeline passes the TrainConfig there")
    config = TrainConfig.from_dict(custom["train_config"])
    data = ",".join(fn_args.train_files)
    changes: dict[str, Any] = {"data": data}
    if fn_args.train_steps:
        changes["steps"] = int(fn_args.train_steps)
    return config.replace(**changes).validate()


def store_directions(saved_model_dir: str, fn_args: Any) -> str:
    """Compute and store the attribute directions of the export (see the module docstring); returns what happened,
    for the training summary."""
    from dcgan.directions import NoAttributeLabels, compute_and_store_directions

    option = (fn_args.custom_config or {}).get("directions", True)
    if option is False or option is None:
        log.info("attribute directions: off (custom_config['directions'] is %r)", option)
        return "off"
    config = option if isinstance(option, dict) else None
    try:
        path, result = compute_and_store_directions(saved_model_dir, list(fn_args.train_files),
                                                    list(getattr(fn_args, "eval_files", None) or []), config)
    except NoAttributeLabels as e:
        log.info("attribute directions: skipped, the training data has no usable attribute labels (%s)", e)
        return f"skipped: {e}"
    log.info("attribute directions: %s (%s) in %.0f s", path, ", ".join(result["attributes"]), result["seconds"])
    return path


def wait_for_chief_export(serving_model_dir: str, timeout_s: float = CHIEF_EXPORT_WAIT_S,
                          poll_s: float = 2.0) -> None:
    """A non-chief worker's end of `run_fn`: the chief exports alone (it may still be computing directions), and
    TFX's Trainer executor checks, in every worker, that `serving_model_dir` exists once `run_fn` returns. Wait for
    the chief's complete export (its saved_model.pb, written last), at most `timeout_s`."""
    import time

    marker = fileio.join(serving_model_dir, "saved_model.pb")
    deadline = time.monotonic() + timeout_s
    while not fileio.exists(marker):
        if time.monotonic() > deadline:
            raise TimeoutError(f"this worker finished training, but the chief's export {serving_model_dir} did not "
                               f"appear within {timeout_s:.0f} s (did the chief fail? see its log)")
        time.sleep(poll_s)
    log.info("non-chief worker: the chief exported %s; nothing written here", serving_model_dir)


def resume_key(config: Any) -> str:
    """What an interrupted run must share with a later run of the Trainer to be continued by it: every TrainConfig
    value (the data's Examples URIs included) except the step count, which a re-run may raise."""
    values = config.to_dict()
    values.pop("steps")
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def parked_run_dir(fn_args: Any, config: Any) -> str:
    """Where an interrupted run directory waits for the next run of the Trainer: `custom_config["resume_root"]` (the
    pipeline passes `<pipeline root>/Trainer/interrupted`, on every orchestrator; by default the folder beside
    `model_run/`) / resume_key / run. Outside the Trainer's outputs: TFX deletes those of a failed execution."""
    root = (fn_args.custom_config or {}).get("resume_root") or fileio.join(
        fn_args.model_run_dir.rstrip("/").rsplit("/", 2)[0], "interrupted")
    return fileio.join(root, resume_key(config), "run")


def _start_or_resume(fn_args: Any, config: Any):
    """The Trainer for this execution: the same execution retried (its run directory is there) continues; an
    interrupted earlier run with the same settings and data (parked) is moved into this execution's run directory
    and continues from its last checkpoint; otherwise a new run."""
    from dcgan.run import CHECKPOINT_DIR, is_run_dir
    from dcgan.train import Trainer

    run_dir = fn_args.model_run_dir
    progress = sys.stderr.isatty()
    if is_run_dir(run_dir):
        return Trainer.resume(run_dir, steps=config.steps, progress=progress)
    parked = parked_run_dir(fn_args, config)
    if config.strategy != "multi_worker_mirrored" and is_run_dir(parked):
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(fileio.join(parked, CHECKPOINT_DIR))
        step = int(latest.rsplit("-", 1)[-1]) if latest else 0
        if step <= config.steps:
            log.info("resuming the run interrupted at step %d (%s) in %s", step, parked, run_dir)
            fileio.remove_tree(run_dir)  # the empty output folder TFX made
            fileio.move_tree(parked, run_dir)
            return Trainer.resume(run_dir, steps=config.steps, progress=progress)
        log.info("an interrupted run at step %d (%s) is past the %d steps asked for: starting anew", step, parked,
                 config.steps)
    return Trainer(config, run_dir, progress=progress)


def run_fn(fn_args: Any) -> None:
    """TFX GenericExecutor entry point. A run stopped by SIGINT/SIGTERM (during training: after its step, with a
    checkpoint; during the export or the directions that follow: at once) is parked for the next run of the
    pipeline (`parked_run_dir`) and fails the execution (StepInterrupted): nothing is exported, pushed or cached."""
    from dcgan.interrupt import Interrupted, StepInterrupted, signal_name

    config = _train_config(fn_args)
    run_dir = fn_args.model_run_dir
    fileio.ensure_filesystems(run_dir, fn_args.serving_model_dir)  # s3:// usable in this process
    trainer = _start_or_resume(fn_args, config)
    if trainer.config.fid_every:
        from dcgan.metrics.hook import training_hooks  # Inception: only when asked

        trainer.hooks += training_hooks(trainer.config, trainer.data, trainer.sample)
    from dcgan.runtime import cpu_info, describe_tensorflow

    machine = f"{cpu_info().describe()}; {describe_tensorflow()}"
    log.info("training %s: %d usable images (%s mode), %d skipped; %s", run_dir, trainer.data.num_examples,
             trainer.data.mode, len(trainer.data.rejected), machine)
    step = int(trainer.models.step.numpy())
    try:
        result = trainer.train()
        step = result.step
        if result.interrupted:
            raise Interrupted(result.interrupted_by)
        if trainer.is_chief:
            _export(fn_args, result, machine)
        else:
            wait_for_chief_export(fn_args.serving_model_dir)
    except Interrupted as e:
        if trainer.is_chief and config.strategy != "multi_worker_mirrored":
            parked = parked_run_dir(fn_args, config)
            fileio.remove_tree(parked)  # an older interrupted run of the same settings: this one is as far or further
            fileio.move_tree(run_dir, parked)
            fileio.makedirs(run_dir)  # the (empty) output folder TFX removes from a failed execution
            where = f"the run is kept in {parked}"
        else:
            where = f"the run directory is {run_dir}"
        when = (f"at step {step} of {config.steps} (checkpoint saved" if step < config.steps
                else f"after training all {step} steps, before its export was complete (")
        raise StepInterrupted(e.signum, (
            f"Trainer stopped by {signal_name(e.signum)} {when}; {where}); nothing was exported or pushed. Run the "
            f"pipeline again with the same settings to resume from step {step}.")) from None


def _export(fn_args: Any, result: Any, machine: str) -> None:
    """The chief's export of a finished run: the generator SavedModel, its attribute directions, FID reference
    statistics and the training summary (beside the model and in the run directory)."""
    from dcgan.export import export_run

    run_dir = fn_args.model_run_dir
    summary = {
        "steps": result.step,
        "d_loss": result.d_loss,
        "g_loss": result.g_loss,
        "images_per_sec": result.images_per_sec,
        "num_examples": result.num_examples,
        "rejected": result.rejected,
        "run_dir": run_dir,
        "train_files": list(fn_args.train_files),
        "machine": machine,  # the CPU and kernels that trained it: speeds and exact figures depend on them
        "resumed_from_step": result.start_step,  # > 0: continued an interrupted run from that checkpoint
    }
    path = export_run(run_dir, fn_args.serving_model_dir, overwrite=True, extra_metadata={"training": summary})
    summary["directions"] = store_directions(path, fn_args)
    summary["fid_reference"] = store_reference_stats(path, fn_args)
    fileio.write_json_atomic(fileio.join(path, "assets.extra", SUMMARY_FILE), summary, indent=2)
    fileio.write_json_atomic(fileio.join(run_dir, SUMMARY_FILE), summary, indent=2)
    log.info("exported the generator to %s", path)


def examples_split(pattern: str) -> tuple[str, str]:
    """`<Examples>/Split-<name>/*` (a Trainer's eval_files entry) → (Examples dir, name), the form the evaluator
    reads (same image set, same feature-cache key); anything else → (pattern, "eval")."""
    split_dir = pattern.rsplit("/", 1)[0] if "*" in pattern else pattern
    parent, _, split = split_dir.rstrip("/").rpartition("/Split-")
    return (parent, split) if parent and split else (pattern, "eval")


def store_reference_stats(saved_model_dir: str, fn_args: Any) -> str | dict:
    """FID reference statistics of the eval split beside the export (dcgan.metrics.reference), for the canary
    analysis of `dcgan rollout`. `custom_config["reference_stats"]`: False/absent = off, True, or a dict of
    {num_real, seed, max_fid_regression} (the pipeline passes its evaluation settings, so the FidEvaluator reads
    the same features from the cache). Returns the metadata, or why nothing was written."""
    option = (fn_args.custom_config or {}).get("reference_stats", False)
    eval_files = list(getattr(fn_args, "eval_files", None) or [])
    if not option or not eval_files:
        return "off" if not option else "skipped: no eval split"
    from dcgan.metrics.reference import store_reference_stats as store

    settings = option if isinstance(option, dict) else {}
    data, split = examples_split(eval_files[0])
    return store(saved_model_dir, data, split, num=settings.get("num_real"), seed=int(settings.get("seed", 0)),
                 max_fid_regression=settings.get("max_fid_regression"))
