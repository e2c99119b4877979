"""The `dcgan` command line: one console script, one sub-command per job.

The ML-library commands (train, sample, visualize, export, ...) live here. Commands of the pipeline machinery
(ingest, pipeline, serve, ...) are registered by their packages through the `dcgan.commands` entry-point group
(see pyproject.toml), so this library never imports TFX, Beam or serving code.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points

from dcgan.cli_args import add_dataclass_arguments, overrides

EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as `dcgan <cmd>: error: ...` with a non-zero exit code (no traceback)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ and Python logs out of the way unless the user asked for them (before TF is imported)."""
    # Level 3: TF 2.16 logs three harmless "Unable to register cuDNN/cuFFT/cuBLAS factory" errors on every start.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*np.find_common_type.*")


# -- train -------------------------------------------------------------------------------------------------------------
_TRAIN_HELP = {
    "data": "folder of images (recursive), Examples dir, TFRecord file/glob; comma-separate several",
    "size": "output image size: 32, 64 or 128",
    "z_dim": "latent dimension",
    "ngf": "G width: G starts at 4x4x(ngf*2^(n-1)) (size 64: ngf=64 -> 512, ngf=128 -> the paper's 1024)",
    "ndf": "D width of the first layer",
    "kernel_size": "convolution kernel: 4 or 5",
    "channels": "1 (grey) or 3 (RGB)",
    "steps": "total training steps (with --resume: the new total)",
    "batch_size": "global mini-batch size",
    "ema_decay": "keep an EMA copy of G for sampling/export (e.g. 0.999); 0 = off",
    "label_smoothing": "one-sided label smoothing for real images",
    "learning_rate": "Adam learning rate of G, and of D unless --d-learning-rate is given (paper: 2e-4)",
    "d_learning_rate": "D's own learning rate (two time-scale update, TTUR); 0 = --learning-rate",
    "diffaugment": "DiffAugment before D, on real and fake: comma-separated subset of color,translation,cutout; "
                   "'' = off (the paper)",
    "crop": "folder images: 'center' square crop then resize, or 'none' (resize only)",
    "input_mode": "'memory' (decode once into RAM), 'stream', or 'auto'",
    "precision": "float32, mixed_float16 (GPU, loss scaling) or mixed_bfloat16",
    "strategy": "auto (Mirrored on several GPUs), default, mirrored, multi_worker_mirrored",
    "fid_every": "log FID to TensorBoard every K steps (0 = off)",
}


def _add_train(sub) -> None:
    from dcgan.config import TrainConfig

    p = sub.add_parser("train", help="train a DCGAN from images or TFRecords",
                       description="Train a DCGAN. Writes checkpoints, TensorBoard logs and sample grids to --out.")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    names = add_dataclass_arguments(p, TrainConfig, help_text=_TRAIN_HELP)
    p.set_defaults(func=_cmd_train, config_names=names)


def _cmd_train(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from dcgan.config import TrainConfig
    from dcgan.train import Trainer

    given = overrides(args, args.config_names)
    if args.resume:
        unexpected = set(given) - {"steps"}
        if unexpected:
            raise CommandError(f"--resume continues a run with its saved config; only --steps may change "
                               f"(got {', '.join('--' + k.replace('_', '-') for k in sorted(unexpected))})", EXIT_USAGE)
        trainer = Trainer.resume(args.resume, steps=given.get("steps"), progress=not args.no_progress)
    else:
        if not args.out:
            raise CommandError("--out RUN_DIR is required (or --resume RUN_DIR)", EXIT_USAGE)
        config = TrainConfig().replace(**given).validate()
        trainer = Trainer(config, args.out, progress=not args.no_progress)
    if trainer.config.fid_every:
        from dcgan.metrics.hook import training_hooks  # Inception: only when asked

        trainer.hooks += training_hooks(trainer.config, trainer.data, trainer.sample)
    d = trainer.data
    from dcgan.runtime import describe_tensorflow

    print(f"data: {d.source.description}, {d.num_examples} usable images ({d.mode} mode), "
          f"{len(d.rejected)} skipped; {describe_tensorflow()}", file=sys.stderr)
    result = trainer.train()
    print(f"trained {result.run_dir} to step {result.step}: d_loss={result.d_loss:.4f} g_loss={result.g_loss:.4f} "
          f"({result.images_per_sec:.1f} img/s); checkpoint {result.checkpoint}")
    return 0


# -- sample / visualize / export ------------------------------------------------------------------------------------
def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="generate N faces from a run or SavedModel (grid and/or files; seeds recorded)")
    p.add_argument("source", help="run directory or exported SavedModel directory")
    p.add_argument("--n", type=_int_in(1), default=64, help="number of faces (default 64)")
    p.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0,
                   help="first seed; faces use seeds seed..seed+n-1 (default 0)")
    p.add_argument("--out", default="samples.png", help="grid PNG (default samples.png; '' for none)")
    p.add_argument("--files", metavar="DIR", help="also write one PNG per face into DIR")
    p.add_argument("--cols", type=_int_in(1), help="grid columns")
    p.add_argument("--no-ema", action="store_true", help="use the raw generator, not its EMA copy")
    p.add_argument("--checkpoint", help="a specific checkpoint prefix instead of the latest")
    p.set_defaults(func=_cmd_sample)


def _cmd_sample(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from dcgan import visualize

    sampler = visualize.load_sampler(args.source, use_ema=not args.no_ema, checkpoint=args.checkpoint)
    rec = visualize.sample(sampler, args.n, args.seed, args.out, args.files, args.cols)
    print(f"{args.n} faces (seeds {args.seed}..{args.seed + args.n - 1}) from {sampler.description}"
          + (f" -> {rec['grid']}" if rec.get("grid") else "") + (f", files in {args.files}" if args.files else ""))
    return 0


MAX_SEED = 2**63 - 1


# -- env ---------------------------------------------------------------------------------------------------------------
def _add_env(sub) -> None:
    p = sub.add_parser("env", help="this machine for bug reports and benchmarks: CPU, ISA, oneDNN, stack, load",
                       description="Print the CPU model, its ISA flags (AVX2, AVX-512, BF16, AMX), the cores this "
                                   "process may use, the load average, the stack and whether TensorFlow runs its "
                                   "oneDNN kernels (as TensorFlow reports it).")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_env)


def _cmd_env(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from dcgan.runtime import machine_facts

    facts = machine_facts()
    if args.json:
        import json

        print(json.dumps(facts, indent=2))
    else:
        width = max(len(k) for k in facts) + 1
        for key, value in facts.items():
            shown = " ".join(str(v) for v in value) if isinstance(value, list) else value
            print(f"{key + ':':<{width}} {shown}")
    return 0


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in low..high (argparse names the flag in its usage error, exit code 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"must name at least one seed, got {text!r}")
    if not all(0 <= s <= MAX_SEED for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be between 0 and {MAX_SEED}, got {text!r}")
    return seeds


def _dims(text: str) -> list[int]:
    try:
        dims = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {text!r}") from None
    if not dims or min(dims) < 0:
        raise argparse.ArgumentTypeError(f"must name z dimensions >= 0, got {text!r}")
    return dims


def _add_visualize(sub) -> None:
    p = sub.add_parser("visualize", help="latent-space pictures: interpolation strips, GIF walks, 1-D sweeps",
                       description="carpedm20/DCGAN-tensorflow's --visualize options, named: grid (option 0), sweep "
                                   "(1), sweep-gif (2: random base = --seeds, 3: zero base = --zero-base; one GIF "
                                   "per z dimension), merged-gif (4: one 10x10 GIF, cell i sweeps dimension i); "
                                   "plus gif (slerp walks) and interpolate (slerp strips).")
    p.add_argument("source", help="run directory or exported SavedModel directory")
    p.add_argument("--mode", choices=("grid", "interpolate", "gif", "sweep", "sweep-gif", "merged-gif"),
                   default="interpolate")
    p.add_argument("--out", help="output file (PNG; .gif for --mode gif/merged-gif; a folder for --mode sweep-gif)")
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2, 3, 4, 5, 6, 7], help="comma-separated seeds")
    p.add_argument("--steps", type=_int_in(2), default=10, help="frames per strip / sweep / walk segment")
    p.add_argument("--method", choices=("slerp", "lerp"), default="slerp")
    p.add_argument("--dim", type=_int_in(0), default=0, help="sweep: the z dimension to vary")
    p.add_argument("--dims", type=_dims, help="sweep-gif: comma-separated z dimensions (default: every one)")
    p.add_argument("--zero-base", action="store_true",
                   help="sweep-gif / merged-gif: sweep around z = 0 (carpedm20's options 3 and 4), not the seeds' z")
    p.add_argument("--low", type=_finite_float, help="sweep start (default -2 for sweep, -1 for the GIF sweeps)")
    p.add_argument("--high", type=_finite_float, help="sweep end (default 2 for sweep, 1 for the GIF sweeps)")
    p.add_argument("--keyframes", type=_int_in(0), default=3, help="gif: random points each walk visits")
    p.add_argument("--fps", type=_int_in(1, 100), default=12, help="gif: frames per second (1-100)")
    p.add_argument("--no-ema", action="store_true")
    p.set_defaults(func=_cmd_visualize)


def _cmd_visualize(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from dcgan import visualize

    if args.mode == "interpolate" and len(args.seeds) % 2:
        raise CommandError(f"--seeds: interpolate needs pairs of seeds (a,b[,c,d...]), got {len(args.seeds)}",
                           EXIT_USAGE)
    wide = 2.0 if args.mode == "sweep" else 1.0
    low = -wide if args.low is None else args.low
    high = wide if args.high is None else args.high
    sampler = visualize.load_sampler(args.source, use_ema=not args.no_ema)
    out = args.out or {"gif": "walk.gif", "merged-gif": "merged.gif", "sweep-gif": "sweep_gifs"}.get(
        args.mode, f"{args.mode}.png")
    if args.mode == "sweep-gif":
        dims = args.dims
        if dims is not None and max(dims) >= sampler.z_dim:
            raise CommandError(f"--dims {max(dims)} is outside 0..{sampler.z_dim - 1}", EXIT_USAGE)
        record = visualize.sweep_gifs(sampler, None if args.zero_base else args.seeds, dims, args.steps, out, low,
                                      high, args.fps)
        print(f"sweep-gif (carpedm20 option {'3' if args.zero_base else '2'}): {len(record['files'])} GIFs in {out}")
        return 0
    if args.mode == "merged-gif":
        record = visualize.merged_gif(sampler, None if args.zero_base else args.seeds[0], args.steps, out, low, high,
                                      args.fps)
        print(f"merged-gif (carpedm20 option 4): {record['cells']} cells, {record['frames']} frames: {out}")
        return 0
    if args.mode == "grid":
        visualize.sample(sampler, len(args.seeds), args.seeds[0], out, seeds=args.seeds)
    elif args.mode == "interpolate":
        visualize.interpolation_strips(sampler, args.seeds, args.steps, out, args.method)
    elif args.mode == "sweep":
        if not 0 <= args.dim < sampler.z_dim:
            raise CommandError(f"--dim {args.dim} is outside 0..{sampler.z_dim - 1}", EXIT_USAGE)
        visualize.sweep_grid(sampler, args.seeds, args.dim, args.steps, out, low, high)
    else:
        visualize.walk_gif(sampler, args.seeds, args.keyframes, args.steps, out, args.fps)
    print(f"{args.mode}: {out}")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a run's generator as a SavedModel with serving signatures")
    p.add_argument("run_dir")
    p.add_argument("out_dir", help="SavedModel directory to write (e.g. serving/models/dcgan/1)")
    p.add_argument("--no-ema", action="store_true", help="export the raw generator, not its EMA copy")
    p.add_argument("--checkpoint", help="a specific checkpoint prefix instead of the latest")
    p.add_argument("--force", action="store_true", help="replace out_dir if it exists")
    p.add_argument("--reference-stats", metavar="DATA",
                   help="also store the FID reference statistics of these real images (Examples dir, TFRecords or "
                        "a folder) in out_dir/assets.extra/ for `dcgan rollout canary V --analyze`")
    p.add_argument("--reference-split", default="eval", help="split of an Examples dir (default eval)")
    p.add_argument("--reference-num", type=int, help="a seeded subset of this many images (default all)")
    p.add_argument("--max-fid-regression", type=float,
                   help="the evaluation gate's margin, recorded for the canary analysis's FID rule")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from dcgan.export import export_run

    path = export_run(args.run_dir, args.out_dir, use_ema=not args.no_ema, checkpoint=args.checkpoint,
                      overwrite=args.force)
    from dcgan.export import SIGNATURES

    print(f"exported SavedModel to {path} (signatures: {', '.join(SIGNATURES)})")
    if args.reference_stats:
        from dcgan.metrics.reference import store_reference_stats

        meta = store_reference_stats(path, args.reference_stats, args.reference_split, args.reference_num,
                                     max_fid_regression=args.max_fid_regression)
        print(f"FID reference statistics of {meta['n']} images of {meta['data']} in {path}/assets.extra/")
    return 0


# -- directions ----------------------------------------------------------------------------------------------------
_DIRECTIONS_HELP = {
    "samples": "generated samples labelled to fit the directions",
    "eval_samples": "fresh samples on which each direction's effect is measured",
    "amounts": "steps along each direction at which the effect is measured, comma-separated",
    "epochs": "training epochs of the classifier and of the judge, each over its half of the examples",
    "min_steps": "classifier optimizer steps at least",
    "batch_size": "classifier batch size",
    "learning_rate": "classifier learning rate",
    "max_examples": "real examples read at most (train + held-out)",
    "heldout_fraction": "held-out share when the data has no eval split",
    "min_positives": "positive and negative training examples an attribute needs",
    "min_group": "generated samples needed on each side (fewer: top/bottom decile split)",
    "threshold": "classifier score at which a face has the attribute",
    "seed": "seed of the samples and the classifier",
    "boundary_l2": "L2 penalty of the boundary directions' logistic regression",
    "sefa_components": "SeFa directions stored (top eigenvectors of A^T A)",
    "reliable_accuracy": "held-out balanced accuracy from which an attribute is judged (quality, conditional)",
    "quality_amount": "step (sigma) at which success, leakage and churn are measured",
    "judge": "train an independent judge on the other half of the examples and grade the directions with it",
    "control_directions": "random unit directions of the quality table's control row",
    "success_goal": "quality goal: success by the judge at +quality_amount",
    "churn_ratio_goal": "quality goal: churn at most this multiple of the random control's",
    "suggest_success": "a slider's suggested step is the smallest at which the classifier sees this share with "
                       "the attribute",
}


def _add_directions(sub) -> None:
    from dcgan.directions import DirectionsConfig

    p = sub.add_parser("directions", help="attribute directions in z of a SavedModel (stored beside it)",
                       description="Train a small attribute classifier on labelled real examples, label generated "
                                   "samples with it, and store per attribute the mean-difference, boundary "
                                   "(InterFaceGAN) and conditional directions, plus the unsupervised SeFa "
                                   "directions, in SAVED_MODEL_DIR/assets.extra/directions.json, with the measured "
                                   "effect of moving fresh samples along each direction (success/leakage matrix); "
                                   "the classifier is exported beside it (assets.extra/attribute_classifier).")
    p.add_argument("saved_model_dir", metavar="SAVED_MODEL_DIR", help="a generator SavedModel (dcgan export, Pusher)")
    p.add_argument("--data", required=True,
                   help="labelled examples: an Examples directory (train split trains the classifier, eval split "
                        "is held out) or TFRecord files/folders/globs, comma-separated")
    names = add_dataclass_arguments(p, DirectionsConfig, help_text=_DIRECTIONS_HELP)
    p.add_argument("--out", help="write directions.json here instead of SAVED_MODEL_DIR/assets.extra/")
    p.add_argument("--json", action="store_true", help="print the whole document instead of the table")
    p.set_defaults(func=_cmd_directions, config_names=names)


def _cmd_directions(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    import json

    from dcgan.directions import (
        DirectionsConfig,
        NoAttributeLabels,
        classifier_path_for,
        compute_directions,
        default_classifier_dir,
        default_judge_dir,
        format_report,
        judge_path_for,
        resolve_labelled_files,
        write_directions,
    )

    if not os.path.isfile(os.path.join(args.saved_model_dir, "saved_model.pb")):
        raise CommandError(f"{args.saved_model_dir!r} is not a SavedModel directory (no saved_model.pb)", EXIT_USAGE)
    try:
        config = DirectionsConfig(**overrides(args, args.config_names)).validate()
    except ValueError as e:
        raise CommandError(str(e), EXIT_USAGE) from None
    try:
        train, heldout = resolve_labelled_files(args.data)
        classifier_dir = classifier_path_for(args.out) if args.out else default_classifier_dir(args.saved_model_dir)
        judge_dir = judge_path_for(args.out) if args.out else default_judge_dir(args.saved_model_dir)
        result = compute_directions(args.saved_model_dir, train, heldout, config, export_classifier_to=classifier_dir,
                                    export_judge_to=judge_dir if config.judge else None)
    except NoAttributeLabels as e:
        raise CommandError(f"no attribute directions: {e}", EXIT_USAGE) from None
    path = write_directions(args.saved_model_dir, result, args.out)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_report(result))
        judge = f", judge -> {judge_dir}" if config.judge else ""
        print(f"\n{len(result['directions'])} directions of {len(result['attributes'])} attributes -> {path}, "
              f"attribute classifier -> {classifier_dir}{judge} ({result['seconds']:.0f} s)")
    return 0


BUILTIN: list[Callable] = [_add_train, _add_sample, _add_visualize, _add_export, _add_directions, _add_env]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dcgan", description="DCGAN face generators: train, evaluate, serve.")
    parser.add_argument("--log-level", default=os.environ.get("DCGAN_LOG_LEVEL", "WARNING"),
                        help="Python log level (default WARNING)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in BUILTIN:
        add(sub)
    for ep in sorted(entry_points(group="dcgan.commands"), key=lambda e: e.name):
        try:
            register = ep.load()
        except ModuleNotFoundError as e:
            if e.name and ep.value.startswith(e.name):  # that part of the project is not installed here
                continue
            print(f"dcgan: warning: commands of {ep.value!r} unavailable: {e}", file=sys.stderr)
            continue
        except Exception as e:  # noqa: BLE001 - a broken plugin must not take the whole CLI down
            print(f"dcgan: warning: commands of {ep.value!r} unavailable: {e}", file=sys.stderr)
            continue
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    from dcgan.config import ConfigError
    from dcgan.errors import DataError, DcganError

    known: tuple[type[BaseException], ...] = (DcganError, FileNotFoundError, FileExistsError, NotADirectoryError,
                                              PermissionError, ValueError)
    try:
        return int(args.func(args) or 0)
    except CommandError as e:
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"dcgan {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dcgan ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except known as e:
        code = EXIT_USAGE if isinstance(e, (ConfigError, DataError)) else 1
        print(f"dcgan {args.command}: error: {e}", file=sys.stderr)
        return code


def entry() -> None:
    """The console script: `main`, then an exit that survives tensorflow-io's abort at exit (dcgan.fileio)."""
    from dcgan.fileio import exit_process

    exit_process(main())


if __name__ == "__main__":
    # `python -m dcgan.cli`: run the module imported under its own name, so that commands registered by other packages
    # (which import dcgan.cli) raise the same CommandError class this main catches.
    from dcgan.cli import entry as _entry

    _entry()
