"""The effect of each direction, measured by the classifier on fresh samples: its attribute's score and share at
each amount, the other attributes that change most, the churn; and the step each slider suggests from it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np


def measure_effect(generate: Callable[[np.ndarray], np.ndarray], score: Callable[[np.ndarray], np.ndarray],
                   z: np.ndarray, vectors: np.ndarray, amounts: Sequence[float], names: Sequence[str],
                   threshold: float = 0.5, attribute_of: Sequence[int | None] | None = None,
                   judged: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """For each direction d_j: the classifier scores of G(z + a·d_j) for every amount a.

    `generate` maps z [N, z_dim] → images in [-1, 1]; `score` maps images → scores [N, A] (columns = `names`).
    `attribute_of[j]` is the column of direction j's own attribute (None for an unsupervised direction; by default
    direction j is attribute j). Returns, per direction: the mean score of its own attribute at each amount, the change
    from amount 0 and the share of faces at or above the threshold (attribute directions only); the prevalence of
    every attribute at each amount; the three other attributes whose mean score moves most at the largest amount;
    and with `judged` (columns), the churn at each amount: the share of faces whose verdict on a judged column
    other than its own flips (dcgan.edit_quality)."""
    from dcgan.edit_quality import edit_quality

    if attribute_of is None:
        attribute_of = list(range(len(vectors)))
    from dcgan.edit_quality import score_pictures

    z = np.asarray(z, np.float32)
    vectors = np.asarray(vectors, np.float32)
    moving = [a for a in amounts if a != 0]
    # Every direction at every amount in one array of z, pictured and scored in a few large calls.
    shifted = z[None, None] + np.asarray(moving, np.float32)[None, :, None, None] * vectors[:, None, None, :]
    scores = score_pictures(generate, {"score": score}, np.concatenate([z, shifted.reshape(-1, z.shape[1])]))["score"]
    base, moved = scores[:len(z)], scores[len(z):].reshape(len(vectors), len(moving), len(z), -1)
    out = []
    top = _side_effect_amount(amounts)
    for j, own in enumerate(attribute_of):
        per_amount = [base if a == 0 else moved[j, moving.index(a)] for a in amounts]
        at_top = per_amount[list(amounts).index(top)]
        change = np.mean(at_top, 0) - np.mean(base, 0)
        others = {}
        for k in np.argsort(-np.abs(change), kind="stable"):
            if k != own and len(others) < 3:
                others[names[k]] = round(float(change[k]), 4)
        entry: dict[str, Any] = {"amounts": [float(a) for a in amounts]}
        if own is not None:
            mean = [float(np.mean(s[:, own])) for s in per_amount]
            zero = float(np.mean(base[:, own]))
            entry.update({
                "mean_score": [round(v, 4) for v in mean],
                "delta": [round(v - zero, 4) for v in mean],
                "positive_rate": [round(float(np.mean(s[:, own] >= threshold)), 4) for s in per_amount],
            })
        entry.update({
            "side_effects_at": float(top),
            "side_effects": others,
            "prevalence": {name: [round(float(np.mean(s[:, k] >= threshold)), 4) for s in per_amount]
                           for k, name in enumerate(names)},
        })
        if judged is not None:
            entry["churn"] = [edit_quality(base >= threshold, s >= threshold, own, judged, names)["churn"]
                              for s in per_amount]
        out.append(entry)
    return out


def suggested_amount(effect: Mapping[str, Any], target: float,
                     control_churn: Mapping[float, float | None] | None = None,
                     churn_limit: float | None = None) -> float | None:
    """The step a slider suggests for adding its attribute, chosen by the classifier that fitted the direction on
    the effect's fresh samples (the judge stays out of the choice): the smallest positive measured amount at which
    at least `target` of the faces have the attribute and — given the effect's `churn` and the random control's
    churn at each amount (`control_churn`) — whose churn is at most `churn_limit` × the control's; else the smallest
    that reaches the target; else the positive amount where most have it (the slider's reach). No further than
    needed: every step also changes other things. None for a direction without an attribute or positive amounts."""
    amounts = effect.get("amounts", [])
    rates = [(a, r) for a, r in zip(amounts, effect.get("positive_rate") or []) if a > 0]
    if not rates:
        return None
    reached = [a for a, r in rates if r >= target]
    if not reached:
        return float(max(rates, key=lambda ar: (ar[1], -ar[0]))[0])
    churn = dict(zip(amounts, effect.get("churn") or []))
    if control_churn is not None and churn_limit is not None:
        calm = [a for a in reached if churn.get(a) is not None and control_churn.get(a)
                and churn[a] <= churn_limit * control_churn[a]]
        if calm:
            return float(min(calm))
    return float(min(reached))


def _side_effect_amount(amounts: Sequence[float]) -> float:
    """The amount at which side effects are reported: the largest positive one (else the largest in size)."""
    positive = [a for a in amounts if a > 0]
    return max(positive) if positive else max(amounts, key=abs)
