"""One evaluation of a generator against real data — what `dcgan evaluate` and the TFX `FidEvaluator` run.

Steps: load the generator (exported SavedModel, TFX Model artifact dir with `Format-Serving/`, or run dir);
features of the real eval images (cached per dataset fingerprint); features of N generated images (z seeds
seed..seed+N−1); FID, KID, precision/recall; the floor (training images vs the same eval images, at the same N);
the memorisation check against the training images; the baseline model the same way; the gate. Writes to
`out_dir`:

    metrics.json         metrics, floor, baseline, memorisation summary, the gate decision and reason, inputs, timings
    samples.png          the first `grid_size` generated images (seeds seed, seed+1, ...)
    memorization.png     the generated samples closest to a training image, each beside that training image
    memorization.json    those pairs: seed, training index, distance
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dcgan import fileio
from dcgan import images as imlib
from dcgan.errors import DataError
from dcgan.fileio import write_json_atomic
from dcgan.metrics import features as featlib
from dcgan.metrics import gating, scores
from dcgan.metrics.config import EvaluationConfig, EvaluationError
from dcgan.metrics.inception import get_extractor
from dcgan.metrics.memorization import memorization_check, pairs_grid

log = logging.getLogger(__name__)

SERVING_SUBDIR = "Format-Serving"  # where a TFX Trainer writes the SavedModel inside a Model artifact
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.png"
MEMORIZATION_FILE = "memorization.png"
MEMORIZATION_JSON = "memorization.json"


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    decision: gating.GateDecision
    baseline: dict[str, Any] | None
    memorization: dict[str, Any] | None
    files: dict[str, str]
    inputs: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def blessed(self) -> bool:
        return self.decision.blessed

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "gate": self.decision.to_dict(), "baseline": self.baseline,
                "memorization": self.memorization, "files": self.files, "inputs": self.inputs,
                "timings_s": self.timings}


def resolve_model_path(path: str) -> str:
    """A SavedModel dir, a TFX Model artifact dir (SavedModel under `Format-Serving/`), or a training run dir."""
    if fileio.exists(fileio.join(path, "saved_model.pb")):
        return path
    serving = fileio.join(path, SERVING_SUBDIR)
    if fileio.exists(fileio.join(serving, "saved_model.pb")):
        return serving
    from dcgan.run import is_run_dir

    if is_run_dir(path):
        return path
    raise EvaluationError(f"{path!r} is not a generator: expected a SavedModel directory (saved_model.pb), a TFX "
                          f"Model artifact ({SERVING_SUBDIR}/saved_model.pb) or a training run directory")


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


class _Generator:
    def __init__(self, path: str):
        from dcgan.visualize import load_sampler

        self.path = resolve_model_path(path)
        self.sampler = load_sampler(self.path)
        self.z_dim = self.sampler.z_dim

    def images(self, seeds: np.ndarray) -> np.ndarray:
        from dcgan.latent import z_from_seeds

        return imlib.to_uint8(self.sampler(z_from_seeds(np.asarray(seeds, np.int64), self.z_dim)))


def _generated_metrics(gen_features: np.ndarray, real: np.ndarray, config: EvaluationConfig) -> dict[str, Any]:
    if not np.all(np.isfinite(gen_features)):
        return {"fid": float("nan"), "kid_mean": None, "kid_std": None, "precision": None, "recall": None}
    fid = scores.fid_from_features(gen_features, real)
    kid = scores.kernel_inception_distance(gen_features, real, config.kid_subsets, config.kid_subset_size,
                                           seed=config.seed)
    out: dict[str, Any] = {"fid": fid, "kid_mean": kid.mean, "kid_std": kid.std, "kid_subsets": kid.subsets,
                           "kid_subset_size": kid.subset_size, "precision": None, "recall": None, "pr_k": config.pr_k}
    if min(len(gen_features), len(real)) > config.pr_k:
        pr = scores.precision_recall(real, gen_features, k=config.pr_k)
        out.update(precision=pr.precision, recall=pr.recall)
    return out


def evaluate_generator(model: str, data: str, out_dir: str, config: EvaluationConfig | None = None, *,
                       train_data: str | None = None, baseline: str | None = None, split: str = "eval",
                       train_split: str = "train", cache: str | None = None, progress: bool = True) -> EvaluationResult:
    """Evaluate `model` against the `split` images of `data` and gate it (see the module docstring).

    `data` may be an Examples directory (its `split` is the reference; its `train_split`, when present, gives the
    floor and the memorisation check), or any image set `dcgan.metrics.features.resolve_image_set` accepts.
    `train_data` names the training images explicitly.
    """
    config = (config or EvaluationConfig()).validate()
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    fileio.makedirs(out_dir)
    extractor = get_extractor(batch_size=config.batch_size, cache=cache)

    t = time.perf_counter()
    try:
        real_set = featlib.resolve_image_set(data, split)
    except DataError as e:
        raise EvaluationError(f"eval data: {e}") from e
    train_set = None
    if train_data:
        train_set = featlib.resolve_image_set(train_data, train_split)
    elif train_split in featlib.examples_splits(data) and train_split != split:
        train_set = featlib.resolve_image_set(data, train_split)
    real = featlib.image_set_features(real_set, config.num_real, config.seed, extractor, cache, progress=progress)
    timings["real_features"] = time.perf_counter() - t

    t = time.perf_counter()
    candidate = _Generator(model)
    gen_features = featlib.generator_features(candidate.sampler, candidate.z_dim, config.num_samples, config.seed,
                                              extractor, progress)
    timings["generated_features"] = time.perf_counter() - t
    t = time.perf_counter()
    metrics = _generated_metrics(gen_features, real.features, config)
    metrics.update(num_generated=len(gen_features), num_real=len(real), seed=config.seed)
    timings["scores"] = time.perf_counter() - t

    memorization = None
    pairs: list[dict[str, Any]] = []
    metrics["fid_floor"] = None
    if train_set is not None:
        t = time.perf_counter()
        train = featlib.image_set_features(train_set, config.memorization_reference, config.seed, extractor, cache,
                                           progress=progress)
        timings["train_features"] = time.perf_counter() - t
        t = time.perf_counter()
        # The floor: as many training images as generated ones, against the same eval images.
        n_floor = min(config.num_samples, len(train))
        rows = np.sort(np.random.default_rng(config.seed + 1).choice(len(train), n_floor, replace=False))
        metrics["fid_floor"] = scores.fid_from_features(train.features[rows], real.features)
        metrics["fid_floor_n"] = int(n_floor)
        if np.all(np.isfinite(gen_features)):
            report = memorization_check(gen_features, train.features, real.features)
            memorization = report.summary()
            memorization["num_train_searched"] = len(train)
            closest = report.closest(config.memorization_pairs)
            train_rows = report.nearest[closest]
            train_images = train_set.load(train.indices[train_rows])
            gen_images = candidate.images(config.seed + closest)
            shown_gen, shown_train = [], []
            for k, (i, row) in enumerate(zip(closest, train_rows, strict=True)):
                index = int(train.indices[row])
                pairs.append({"seed": int(config.seed + i), "train_index": index,
                              "distance": float(report.distance[i])})
                if index in train_images:
                    shown_gen.append(gen_images[k])
                    shown_train.append(train_images[index])
            imlib.save_image(pairs_grid(shown_gen, shown_train), fileio.join(out_dir, MEMORIZATION_FILE))
        timings["floor_and_memorization"] = time.perf_counter() - t

    baseline_metrics = None
    if baseline:
        t = time.perf_counter()
        base = _Generator(baseline)
        base_features = featlib.generator_features(base.sampler, base.z_dim, config.num_samples, config.seed,
                                                   extractor, progress)
        baseline_metrics = _generated_metrics(base_features, real.features, config)
        baseline_metrics["model"] = base.path
        timings["baseline"] = time.perf_counter() - t

    decision = gating.decide(metrics["fid"], config.gate,
                             baseline_metrics["fid"] if baseline_metrics else None, config.num_samples)

    files = {"metrics": fileio.join(out_dir, METRICS_FILE)}
    grid_n = min(config.grid_size, config.num_samples)
    if grid_n:
        files["samples"] = imlib.save_image(imlib.make_grid(candidate.images(config.seed + np.arange(grid_n))),
                                            fileio.join(out_dir, SAMPLES_FILE))
    if pairs:
        files["memorization"] = fileio.join(out_dir, MEMORIZATION_FILE)
        files["memorization_pairs"] = fileio.join(out_dir, MEMORIZATION_JSON)
        _write_json(files["memorization_pairs"], {"pairs": pairs, "train_data": train_set.description})
    timings["total"] = time.perf_counter() - t_all
    inputs = {
        "model": candidate.path, "data": real_set.description, "data_fingerprint": real.fingerprint,
        "train_data": train_set.description if train_set else None, "baseline": baseline,
        "config": asdict(config), "extractor": extractor.identity,
    }
    metrics = {k: (_finite(v) if isinstance(v, float) else v) for k, v in metrics.items()}
    result = EvaluationResult(metrics, decision, baseline_metrics, memorization, files, inputs,
                              {k: round(v, 3) for k, v in timings.items()})
    _write_json(files["metrics"], result.to_dict())
    return result


def _write_json(path: str, obj: Any) -> None:
    write_json_atomic(path, obj, indent=2, sort_keys=True, default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def format_report(result: EvaluationResult) -> str:
    """The human-readable summary `dcgan evaluate` prints."""
    m = result.metrics
    lines = [f"model        {result.inputs['model']}", f"real data    {result.inputs['data']}: {m['num_real']} images",
             f"generated    {m['num_generated']} images (z seeds {m['seed']}..{m['seed'] + m['num_generated'] - 1})"]
    fid = m.get("fid")
    floor = m.get("fid_floor")
    floor_text = (f"   (floor {floor:.2f}: {m['fid_floor_n']} training images vs the same real images)"
                  if floor is not None else "   (no floor: no training images given)")
    lines.append(f"FID          {fid:.2f}{floor_text}" if fid is not None else "FID          not a number")
    if m.get("kid_mean") is not None:
        lines.append(f"KID          {m['kid_mean']:.5f} ± {m['kid_std']:.5f}   ({m['kid_subsets']} subsets of "
                     f"{m['kid_subset_size']})")
    if m.get("precision") is not None:
        lines.append(f"precision    {m['precision']:.3f}   recall {m['recall']:.3f}   (k={m['pr_k']})")
    if result.memorization:
        mem = result.memorization
        text = (f"memorisation nearest training image: median {mem['nn_distance_median']:.2f}, min "
                f"{mem['nn_distance_min']:.2f}")
        if mem.get("heldout_nn_distance_median") is not None:
            text += (f" (held-out real images: median {mem['heldout_nn_distance_median']:.2f}); "
                     f"{100 * mem['fraction_closer_than_heldout']:.1f}% of samples closer than the 1st percentile "
                     f"of held-out images")
        lines.append(text)
    if result.baseline:
        b = result.baseline
        lines.append(f"baseline     FID {b['fid']:.2f}" + (f", KID {b['kid_mean']:.5f}" if b.get("kid_mean") else "")
                     + f"   ({b['model']})")
    lines.append(("BLESSED" if result.blessed else "NOT BLESSED") + f"  {result.decision.reason}")
    lines.append("files        " + ", ".join(result.files[k] for k in ("metrics", "samples", "memorization")
                                             if k in result.files))
    return "\n".join(lines)
