"""The training-time FID hook: every `every` steps, FID (and KID) of `num_samples` generated images against
`num_samples` training images, logged by the Trainer to TensorBoard and metrics.jsonl. Same code as `dcgan evaluate`.

The real side is computed once (and cached on disk by the images' content, so a resumed run does not redo it):
a seeded subset of the in-memory training images, or the first batches of a fresh pass over the stream. The
generated side uses fixed z (seeds 1_000_000.., away from the sample grid's seeds), so the curve measures the
generator, not sampling noise. At small N FID is biased upward; the curve is for trends within one run.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dcgan.train import Trainer

log = logging.getLogger(__name__)

Z_SEED_OFFSET = 1_000_000


class FidHook:
    """A `dcgan.train.TrainHook`: `FidHook(trainer, every=K, num_samples=N)`; `hook(trainer, step)` → {"fid", "kid"}."""

    def __init__(self, trainer: Trainer, every: int, num_samples: int):
        if every <= 0:
            raise ValueError(f"every={every} must be a positive number of steps")
        if num_samples < 2:
            raise ValueError(f"num_samples={num_samples} must be at least 2")
        self.every = int(every)
        self.num_samples = int(num_samples)
        self.seed = int(trainer.config.seed)
        self.batch_size = 64
        self._real: np.ndarray | None = None  # features of the real images
        self._z = None

    def real_images(self, trainer: Trainer) -> np.ndarray:
        """The N training images the generated ones are compared with (uint8 N×H×W×C)."""
        from dcgan.metrics.features import select_indices

        data = trainer.data
        if data.images is not None:  # memory mode: a seeded subset of the decoded set
            rows = select_indices(int(data.images.shape[0]), self.num_samples, self.seed)
            return np.asarray(data.images.numpy()[rows])
        batches, n = [], 0
        for element in data.dataset:  # stream mode: a fresh pass (the trainer's own iterator is untouched)
            batch = np.asarray(data.lookup(element))
            batches.append(batch)
            n += len(batch)
            if n >= self.num_samples:
                break
        return np.concatenate(batches)[: self.num_samples]

    def _real_features(self, trainer: Trainer) -> np.ndarray:
        if self._real is None:
            from dcgan.metrics.features import array_features

            self._real = array_features(self.real_images(trainer), description="training images (FID hook)").features
        return self._real

    def _generate(self, trainer: Trainer) -> np.ndarray:
        from dcgan.latent import z_from_seeds

        if self._z is None:
            seeds = Z_SEED_OFFSET + np.arange(self.num_samples)
            self._z = z_from_seeds(seeds, trainer.config.model.z_dim)
        generator = trainer.models.sampling_generator
        return np.concatenate([np.asarray(generator(self._z[i:i + self.batch_size], training=False), np.float32)
                               for i in range(0, self.num_samples, self.batch_size)])

    def generated_images(self, trainer: Trainer) -> np.ndarray:
        """The N generated images the hook measures (uint8), for the current weights."""
        from dcgan.images import to_uint8

        return to_uint8(self._generate(trainer))

    def __call__(self, trainer: Trainer, step: int) -> dict[str, float]:
        from dcgan.images import to_uint8
        from dcgan.metrics import scores
        from dcgan.metrics.inception import get_extractor

        t0 = time.perf_counter()
        real_features = self._real_features(trainer)
        images = self._generate(trainer)
        if not np.all(np.isfinite(images)):  # a diverged generator: say so rather than measure garbage
            log.warning("step %d: the generator's output is not finite; FID is NaN", step)
            return {"fid": float("nan"), "kid": float("nan")}
        features = get_extractor()(to_uint8(images))
        fid = scores.fid_from_features(features, real_features)
        kid = scores.kernel_inception_distance(features, real_features, num_subsets=10,
                                               max_subset_size=min(1000, self.num_samples), seed=step)
        log.info("step %d: FID %.2f, KID %.4f (N=%d, %.1fs)", step, fid, kid.mean, self.num_samples,
                 time.perf_counter() - t0)
        return {"fid": fid, "kid": kid.mean}
