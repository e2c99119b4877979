"""The training-time FID hook: every `every` steps, FID (and KID) of `num_samples` generated images against
`num_samples` training images, logged by the Trainer to TensorBoard and metrics.jsonl. Same code as `dcgan evaluate`
(`features.generator_features` for the generated side, `features.array_features` for the real side).

The caller builds the hook and hands it to the Trainer (`trainer.hooks.append(fid_hook(...))`); the hook gets a
sampler (z → images) and the real images, never the Trainer. The real side is computed once (and cached on disk by
the images' content, so a resumed run does not redo it): a seeded subset of the in-memory training images, or the
first batches of a fresh pass over the stream. The generated side uses fixed z (seeds 1_000_000.., away from the
sample grid's seeds), so the curve measures the generator, not sampling noise. At small N FID is biased upward; the
curve is for trends within one run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from dcgan.config import TrainConfig
from dcgan.data import TrainingData

log = logging.getLogger(__name__)

Z_SEED_OFFSET = 1_000_000

Sampler = Callable[[np.ndarray], np.ndarray]  # z [N, z_dim] float32 → images [N, H, W, C] in [-1, 1]


def training_images(data: TrainingData, num_samples: int, seed: int) -> np.ndarray:
    """N training images (uint8 N×H×W×C): a seeded subset of the decoded set in memory mode, else the first
    batches of a fresh pass over the stream (the trainer's own iterator is untouched)."""
    from dcgan.metrics.features import select_indices

    if data.images is not None:
        rows = select_indices(int(data.images.shape[0]), num_samples, seed)
        return np.asarray(data.images.numpy()[rows])
    batches, n = [], 0
    for element in data.dataset:
        batch = np.asarray(data.lookup(element))
        batches.append(batch)
        n += len(batch)
        if n >= num_samples:
            break
    return np.concatenate(batches)[:num_samples]


class FidHook:
    """A `dcgan.train.TrainHook`: `hook(step)` → {"fid", "kid"} of the sampler's current images against
    `real_images` (NaN when the generator's output is not finite)."""

    def __init__(self, sampler: Sampler, z_dim: int, real_images: np.ndarray, every: int, num_samples: int):
        if every <= 0:
            raise ValueError(f"every={every} must be a positive number of steps")
        if num_samples < 2:
            raise ValueError(f"num_samples={num_samples} must be at least 2")
        self.sampler = sampler
        self.z_dim = int(z_dim)
        self.real_images = real_images
        self.every = int(every)
        self.num_samples = int(num_samples)
        self._real: np.ndarray | None = None  # features of the real images

    def _real_features(self) -> np.ndarray:
        if self._real is None:
            from dcgan.metrics.features import array_features

            self._real = array_features(self.real_images, description="training images (FID hook)").features
        return self._real

    def generated_images(self) -> np.ndarray:
        """The N generated images the hook measures (uint8), for the current weights."""
        from dcgan.metrics.features import generated_images

        return np.concatenate([images for images, _ in
                               generated_images(self.sampler, self.z_dim, self.num_samples, Z_SEED_OFFSET)])

    def __call__(self, step: int) -> dict[str, float]:
        from dcgan.metrics import scores
        from dcgan.metrics.features import generator_features

        t0 = time.perf_counter()
        real_features = self._real_features()
        features = generator_features(self.sampler, self.z_dim, self.num_samples, Z_SEED_OFFSET, progress=False)
        if not np.all(np.isfinite(features)):  # a diverged generator: say so rather than measure garbage
            log.warning("step %d: the generator's output is not finite; FID is NaN", step)
            return {"fid": float("nan"), "kid": float("nan")}
        fid = scores.fid_from_features(features, real_features)
        kid = scores.kernel_inception_distance(features, real_features, num_subsets=10,
                                               max_subset_size=min(1000, self.num_samples), seed=step)
        log.info("step %d: FID %.2f, KID %.4f (N=%d, %.1fs)", step, fid, kid.mean, self.num_samples,
                 time.perf_counter() - t0)
        return {"fid": fid, "kid": kid.mean}


def fid_hook(data: TrainingData, sampler: Sampler, z_dim: int, *, every: int, num_samples: int,
             seed: int = 0) -> FidHook:
    """The FID hook of a run whose config asks for one (`fid_every`, `fid_samples`): `data` and `sampler` are the
    Trainer's (`trainer.data`, `trainer.sample`)."""
    if num_samples < 2:
        raise ValueError(f"num_samples={num_samples} must be at least 2")
    return FidHook(sampler, z_dim, training_images(data, num_samples, seed), every=every, num_samples=num_samples)


def training_hooks(config: TrainConfig, data: TrainingData, sampler: Sampler) -> list[FidHook]:
    """The hooks a TrainConfig asks for: [FidHook] when `config.fid_every` > 0, else []."""
    if not config.fid_every:
        return []
    return [fid_hook(data, sampler, config.model.z_dim, every=config.fid_every,
                     num_samples=config.fid_samples, seed=config.seed)]
