"""The memorisation check: for each generated sample, the nearest training image in Inception feature space.

A generator that copies its training set puts samples much closer to a training image than unseen real images
are. The yardstick is therefore held-out real data: the same nearest-training-image distance for each eval
image. We report the distances, the fraction of generated samples closer to the training set than the 1st
percentile of held-out distances (≈ 0.01 for a model that does not copy), and a grid of the closest pairs
(generated | nearest training image) for a person to look at.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcgan import images as imlib
from dcgan.metrics.scores import nearest_neighbours

CLOSE_QUANTILE = 0.01


@dataclass
class MemorizationReport:
    distance: np.ndarray  # per generated sample: Euclidean distance to its nearest training feature
    nearest: np.ndarray  # per generated sample: row of the training features
    heldout_distance: np.ndarray | None  # per held-out real image: the same distance (the yardstick)

    @property
    def close_threshold(self) -> float | None:
        if self.heldout_distance is None or len(self.heldout_distance) == 0:
            return None
        return float(np.quantile(self.heldout_distance, CLOSE_QUANTILE))

    @property
    def fraction_close(self) -> float | None:
        threshold = self.close_threshold
        return None if threshold is None else float(np.mean(self.distance < threshold))

    def closest(self, n: int) -> np.ndarray:
        """Indices of the n generated samples nearest to a training image, closest first."""
        return np.argsort(self.distance, kind="stable")[:n]

    def summary(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {
            "num_generated": int(len(self.distance)),
            "nn_distance_min": float(self.distance.min()),
            "nn_distance_median": float(np.median(self.distance)),
        }
        if self.heldout_distance is not None:
            out.update({
                "heldout_nn_distance_min": float(self.heldout_distance.min()),
                "heldout_nn_distance_median": float(np.median(self.heldout_distance)),
                "close_quantile": CLOSE_QUANTILE,
                "close_threshold": self.close_threshold,
                "fraction_closer_than_heldout": self.fraction_close,
                # < 1: generated samples sit closer to the training set than unseen real images do.
                "median_distance_ratio": float(np.median(self.distance) / max(np.median(self.heldout_distance),
                                                                              1e-12)),
            })
        return out


def memorization_check(generated: np.ndarray, train: np.ndarray,
                       heldout: np.ndarray | None = None) -> MemorizationReport:
    """Nearest training feature of each generated (and, as the yardstick, each held-out real) feature."""
    gen = nearest_neighbours(generated, train)
    held = nearest_neighbours(heldout, train).distance if heldout is not None and len(heldout) else None
    return MemorizationReport(gen.distance, gen.index, held)


def _rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    image = imlib.to_uint8(np.asarray(image))
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return imlib.resize(image, size) if image.shape[:2] != size else image


def pairs_grid(generated: list[np.ndarray], nearest: list[np.ndarray], pairs_per_row: int = 4,
               gap: int = 6) -> np.ndarray:
    """A grid of (generated | nearest training image) pairs; pairs are further apart than the two halves of one."""
    if len(generated) != len(nearest):
        raise ValueError("need as many nearest training images as generated ones")
    if not generated:
        return np.full((8, 8, 3), 255, np.uint8)
    size = tuple(np.asarray(generated[0]).shape[:2])
    h, w = size
    tiles = []
    for g, t in zip(generated, nearest, strict=True):
        pair = np.full((h, 2 * w + 2, 3), 255, np.uint8)
        pair[:, :w] = _rgb(g, size)
        pair[:, w + 2:] = _rgb(t, size)
        tiles.append(pair)
    return imlib.make_grid(np.stack(tiles), ncols=min(pairs_per_row, len(tiles)), padding=gap)
