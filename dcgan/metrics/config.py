"""`EvaluationConfig`: the one definition of an evaluation's settings. `dcgan evaluate`'s flags, the `FidEvaluator`
component's parameters and the pipeline's `evaluation` section are generated from it (light module: no TensorFlow).

"Off" is spelled one way everywhere: None (on the command line and in `--set`: `none`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dcgan.config import ConfigError
from dcgan.errors import DcganError
from dcgan.metrics import gating
from dcgan.metrics.inception import DEFAULT_BATCH_SIZE


class EvaluationError(DcganError):
    """The evaluation cannot run (bad model path, unusable data, invalid settings)."""


class EvaluationConfigError(EvaluationError, ConfigError):
    """An invalid evaluation setting; the message names it."""


@dataclass(frozen=True)
class EvaluationConfig:
    """How one generator is evaluated and gated (see dcgan.metrics.evaluate)."""

    num_samples: int = 1000  # generated images (and training images for the floor); FID is biased upward at small N
    num_real: int | None = None  # eval images used (a seeded subset); None = all
    seed: int = 0  # first z seed; also seeds the real subsets and KID's subsets
    kid_subsets: int = 100  # KID: number of subsets
    kid_subset_size: int = 1000  # KID: subset size
    pr_k: int = 3  # precision/recall: k of the k-NN manifolds
    memorization_reference: int | None = 5000  # training images searched for nearest neighbours; None = all
    memorization_pairs: int = 16  # closest (generated, training) pairs shown in memorization.png
    grid_size: int = 64  # generated images in samples.png
    batch_size: int = DEFAULT_BATCH_SIZE  # images per Inception batch
    fid_threshold: float | None = None  # bless only if FID ≤ this; None = no absolute rule
    max_fid_regression: float | None = None  # with a baseline: bless only if FID ≤ baseline FID + this; None = no rule

    def validate(self) -> EvaluationConfig:
        if self.num_samples < 2:
            raise EvaluationConfigError(f"num_samples={self.num_samples} must be at least 2 (FID needs a covariance)")
        if self.num_real is not None and self.num_real < 2:
            raise EvaluationConfigError(f"num_real={self.num_real} must be at least 2 or None (all)")
        if self.pr_k < 1 or self.kid_subsets < 1 or self.kid_subset_size < 2 or self.batch_size < 1:
            raise EvaluationConfigError("pr_k, kid_subsets, batch_size must be ≥ 1 and kid_subset_size ≥ 2")
        if self.memorization_reference is not None and self.memorization_reference < 1:
            raise EvaluationConfigError("memorization_reference must be ≥ 1 or None (all)")
        if self.memorization_pairs < 0 or self.grid_size < 0:
            raise EvaluationConfigError("memorization_pairs and grid_size must be ≥ 0")
        try:
            self.gate.validate()
        except gating.GateConfigError as e:
            raise EvaluationConfigError(str(e)) from e
        return self

    @property
    def gate(self) -> gating.GateConfig:
        return gating.GateConfig(self.fid_threshold, self.max_fid_regression)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> EvaluationConfig:
        return dataclasses.replace(self, **changes)


EVALUATION_HELP = {
    "num_samples": "generated images (FID is biased upward at small N: compare and set thresholds at one N)",
    "num_real": "use a seeded subset of this many real images (none = all)",
    "seed": "first z seed; also seeds the real subsets",
    "kid_subsets": "KID: number of subsets",
    "kid_subset_size": "KID: subset size",
    "pr_k": "precision/recall: k of the k-NN manifolds",
    "memorization_reference": "training images searched for nearest neighbours (none = all)",
    "memorization_pairs": "closest pairs shown in memorization.png",
    "grid_size": "generated images in samples.png",
    "batch_size": "images per Inception batch",
    "fid_threshold": "bless only if FID ≤ this (none = no absolute rule)",
    "max_fid_regression": "with a baseline: bless only if FID ≤ baseline FID + this, in FID points (none = no rule)",
}
