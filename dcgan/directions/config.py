"""The options of the directions step (`DirectionsConfig`): how many samples, how long the networks train, the
thresholds and the quality goals. `dcgan directions` takes them as flags, the pipeline as its `directions` section."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The effect is measured at these steps; the positive ones are the candidates for each slider's suggested step.
DEFAULT_AMOUNTS = (-3.0, -2.0, -1.0, 0.0, 1.0, 1.5, 2.0, 2.5, 3.0)


@dataclass(frozen=True)
class DirectionsConfig:
    samples: int = 4000            # generated samples labelled by the classifier to fit the directions
    eval_samples: int = 256        # fresh generated samples on which the effect of each direction is measured
    amounts: tuple[float, ...] = DEFAULT_AMOUNTS
    epochs: int = 24               # training epochs of each network over its half of the real training examples
    min_steps: int = 300           # ... but at least this many optimizer steps (small data sets)
    batch_size: int = 64
    learning_rate: float = 1e-3
    max_examples: int = 20_000     # real examples read at most (train + held-out)
    heldout_fraction: float = 0.2  # held-out share when the data has no eval split
    min_positives: int = 10        # an attribute needs this many positive and negative training examples
    min_group: int = 10            # generated samples needed on each side; fewer → top/bottom decile split
    threshold: float = 0.5         # classifier score at which a face "has" the attribute
    seed: int = 0                  # fit samples use this seed, effect samples seed + 1, the classifier seed + 2
    boundary_l2: float = 1.0       # L2 penalty of the boundary's logistic regression (on the normal, not the bias)
    sefa_components: int = 5       # SeFa directions stored (top eigenvectors of AᵀA)
    reliable_accuracy: float = 0.8  # held-out balanced accuracy from which an attribute is judged (quality, fixing)
    quality_amount: float = 2.0    # the step (σ) at which success, leakage and churn are measured
    judge: bool = True             # train the independent judge on the other half of the examples; it grades
    control_directions: int = 8    # random unit directions of the quality table's control row (seed + 4)
    success_goal: float = 0.85     # quality goals: success by the judge at +quality_amount ...
    churn_ratio_goal: float = 1.5  # ... with churn at most this multiple of the random control's
    suggest_success: float = 0.9   # a slider's suggested step: the smallest at which the classifier sees this share

    def validate(self) -> DirectionsConfig:
        for name in ("samples", "eval_samples", "epochs", "batch_size", "max_examples", "min_positives", "min_group",
                     "sefa_components", "control_directions"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"directions: {name}={getattr(self, name)} must be a positive integer")
        if self.min_steps < 0:
            raise ValueError(f"directions: min_steps={self.min_steps} must be ≥ 0")
        if self.samples < 2 * self.min_group:
            raise ValueError(f"directions: samples={self.samples} must be at least 2 x min_group={self.min_group}")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"directions: heldout_fraction={self.heldout_fraction} must be in (0, 1)")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"directions: threshold={self.threshold} must be in (0, 1)")
        if not self.amounts or not all(math.isfinite(a) for a in self.amounts):
            raise ValueError(f"directions: amounts={self.amounts} must be finite numbers")
        if not (math.isfinite(self.boundary_l2) and self.boundary_l2 > 0):
            raise ValueError(f"directions: boundary_l2={self.boundary_l2} must be a positive number")
        if not 0.5 <= self.reliable_accuracy <= 1.0:
            raise ValueError(f"directions: reliable_accuracy={self.reliable_accuracy} must be in [0.5, 1]")
        if not (math.isfinite(self.quality_amount) and self.quality_amount > 0):
            raise ValueError(f"directions: quality_amount={self.quality_amount} must be a positive number")
        for name in ("success_goal", "suggest_success"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"directions: {name}={getattr(self, name)} must be in (0, 1]")
        if not (math.isfinite(self.churn_ratio_goal) and self.churn_ratio_goal > 0):
            raise ValueError(f"directions: churn_ratio_goal={self.churn_ratio_goal} must be a positive number")
        return self

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DirectionsConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"directions: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = dict(values)
        if "amounts" in values:
            values["amounts"] = tuple(float(a) for a in values["amounts"])
        return cls(**values).validate()
