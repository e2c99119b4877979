"""The gating rules of the evaluator: is a candidate generator good enough to push? (No TensorFlow.)

Two rules, each optional, both must hold:
  * absolute: FID ≤ `fid_threshold`;
  * regression: with a baseline (the latest blessed model, evaluated in the same run, on the same real images,
    with the same number of samples and seeds), FID ≤ baseline FID + `max_fid_regression` (FID points).
A FID that is not a finite number never passes. The decision carries a one-line reason naming the numbers, and
the per-rule results.

FID is biased upward at small N and the bias depends on N: set thresholds for the N the evaluator runs with,
next to the floor it reports (real vs held-out real at that N), never from numbers published at N = 50,000.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


class GateConfigError(ValueError):
    pass


@dataclass(frozen=True)
class GateConfig:
    fid_threshold: float | None = None  # bless only if FID ≤ this (None: no absolute rule)
    max_fid_regression: float | None = None  # with a baseline: bless only if FID ≤ baseline + this (None: no rule)

    def validate(self) -> GateConfig:
        for name in ("fid_threshold", "max_fid_regression"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise GateConfigError(f"{name}={value!r} must be a finite number ≥ 0 (or None to disable the rule)")
        return self


@dataclass(frozen=True)
class Check:
    rule: str  # "finite", "threshold", "regression"
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    blessed: bool
    reason: str
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"blessed": self.blessed, "reason": self.reason, "checks": [asdict(c) for c in self.checks]}


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def decide(fid: float, config: GateConfig, baseline_fid: float | None = None,
           num_samples: int | None = None) -> GateDecision:
    """Apply the rules to a candidate's FID (and the baseline's, when there is one)."""
    config.validate()
    at_n = f" at N={num_samples}" if num_samples else ""
    checks: list[Check] = []
    if fid is None or not math.isfinite(fid):
        checks.append(Check("finite", False, f"FID is {fid} (the generator's output is not a usable image set)"))
        return GateDecision(False, f"not blessed: FID is {fid}, not a finite number", checks)
    if config.fid_threshold is not None:
        ok = fid <= config.fid_threshold
        relation = "≤" if ok else ">"
        checks.append(Check("threshold", ok, f"FID {_fmt(fid)} {relation} threshold {_fmt(config.fid_threshold)}"
                                             f"{at_n}"))
    if config.max_fid_regression is not None:
        if baseline_fid is None:
            checks.append(Check("regression", True, "no baseline model (first blessing): regression rule skipped"))
        elif not math.isfinite(baseline_fid):
            checks.append(Check("regression", True, f"baseline FID is {baseline_fid}: regression rule skipped"))
        else:
            limit = baseline_fid + config.max_fid_regression
            ok = fid <= limit
            delta = fid - baseline_fid
            checks.append(Check("regression", ok,
                                f"FID {_fmt(fid)} vs baseline {_fmt(baseline_fid)}: {delta:+.2f} "
                                f"{'within' if ok else 'beyond'} the allowed regression "
                                f"{_fmt(config.max_fid_regression)} (limit {_fmt(limit)})"))
    failed = [c for c in checks if not c.passed]
    if failed:
        return GateDecision(False, "not blessed: " + "; ".join(c.detail for c in failed), checks)
    if not checks:
        return GateDecision(True, f"blessed: FID {_fmt(fid)}{at_n}; no gating rule configured", checks)
    return GateDecision(True, "blessed: " + "; ".join(c.detail for c in checks), checks)
