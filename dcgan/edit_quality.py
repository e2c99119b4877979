"""How well an attribute edit works, per face and graded by a judge it was not fitted to: success, agreement of two
classifiers, net leakage, churn (the share of faces whose verdict on another attribute flips), a random-direction
control row, and the linear ceiling. Numpy only: the images and scores come from callables.

Definitions (A = an attribute, d = a direction, a = the step in σ, verdict = score ≥ threshold):

- success(d) = share of the faces z + a·d with A, by the grading classifier (the judge);
- agreement(d) = share of the moved faces on which the judge and the fitting classifier give the same verdict on A;
- net leakage(d) = mean over the other judged attributes B of |prevalence_B(moved) − prevalence_B(unmoved)| — a
  number that barely discriminates: an edit that flips B on as many faces as it flips it off scores 0;
- churn(d) = share of faces whose verdict on at least one other judged attribute differs between z and z + a·d —
  counted per face, so flips in both directions add up;
- control: K random unit directions (a fixed seed) moved by the same a on the same faces; its churn for the row of A
  (flips of the attributes other than A, averaged over the K) is what any step that long does to the faces, and
  churn ratio = churn(d) / control churn;
- linear ceiling: the best success any unit direction moved by a can reach, were A a noiseless linear threshold of
  z ~ N(0, I) with prevalence p: Φ(a − Φ⁻¹(1 − p)).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

Scorer = Callable[[np.ndarray], np.ndarray]  # images in [-1, 1] → scores [N, A]


def linear_ceiling(before: float, amount: float) -> float:
    """The best success a unit direction moved by `amount` σ can reach on an attribute with prevalence `before` if
    the attribute is a noiseless linear threshold of z ~ N(0, I): Φ(amount − Φ⁻¹(1 − before)). A face moved by a
    along a unit d changes n·z by a·(n·d) ≤ a, so at most the faces within a of the threshold cross it (d = n)."""
    if before <= 0.0 or before >= 1.0:
        return float(before >= 1.0)
    normal = NormalDist()
    return normal.cdf(amount - normal.inv_cdf(1.0 - before))


def random_unit_directions(count: int, dim: int, seed: int) -> np.ndarray:
    """`count` random unit vectors [count, dim] (isotropic: normalised N(0, I) draws), reproducible from `seed`."""
    v = np.random.default_rng(seed).standard_normal((count, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


PICTURE_BATCH = 2048  # z rows generated and scored per call (dcgan.edit_quality.score_pictures)


def score_pictures(generate: Callable[[np.ndarray], np.ndarray], scorers: Mapping[str, Scorer], z: np.ndarray,
                   batch: int = PICTURE_BATCH) -> dict[str, np.ndarray]:
    """Every scorer's scores [len(z), A] of the pictures of `z` [N ≥ 1, dim], generated `batch` rows at a time: the
    faces of every direction and step go through the generator and the classifiers in a few large calls instead
    of one small call each (which cost ~50 ms apiece on 2 cores, whatever the batch). Each picture is generated
    once and scored by every scorer."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in scorers}
    for i in range(0, len(z), batch):
        images = generate(np.asarray(z[i:i + batch], np.float32))
        for name, score in scorers.items():
            parts[name].append(np.asarray(score(images)))
    return {name: np.concatenate(p) for name, p in parts.items()}


def measure_verdicts(generate: Callable[[np.ndarray], np.ndarray], scorers: Mapping[str, Scorer], threshold: float,
                     z: np.ndarray, vectors: Mapping[str, np.ndarray], amount: float,
                     control: np.ndarray) -> dict[str, dict[str, Any]]:
    """Yes/no verdicts of every scorer on the same faces, unmoved and moved by `amount` along each direction and
    each control direction. Each picture is generated once and scored by every scorer. Returns, per scorer:
    `base` bool [N, A], `moved` {direction: bool [N, A]}, `control` bool [K, N, A]."""
    z = np.asarray(z, np.float32)
    names = list(vectors)
    steps = [np.zeros(z.shape[1], np.float32)] + [np.asarray(vectors[d], np.float32) for d in names] + list(control)
    moves = np.float32(amount) * np.stack(steps).astype(np.float32)  # [1 + D + K, dim]; row 0 leaves z as it is
    scores = score_pictures(generate, scorers, (z[None] + moves[:, None, :]).reshape(-1, z.shape[1]))
    out = {}
    for role, s in scores.items():
        v = (s >= threshold).reshape(len(steps), len(z), -1)
        out[role] = {"base": v[0], "moved": {d: v[1 + i] for i, d in enumerate(names)}, "control": v[1 + len(names):]}
    return out


def edit_quality(before: np.ndarray, after: np.ndarray, own: int | None, judged: Sequence[int],
                 names: Sequence[str]) -> dict[str, Any]:
    """One edit graded by one classifier's verdicts (bool [N, A]) on the same faces before and after the move: the
    own attribute's prevalence `before` and `success` after (attribute directions), net `leakage` (mean |Δ
    prevalence| of the other judged attributes), `churn` (share of faces with a flip of at least one of them), the
    flip rate of each (`flips`) and the three largest prevalence changes (`largest_leaks`)."""
    before, after = np.asarray(before, bool), np.asarray(after, bool)
    others = [k for k in judged if k != own]
    out: dict[str, Any] = {}
    if own is not None:
        out["before"] = round(float(before[:, own].mean()), 4)
        out["success"] = round(float(after[:, own].mean()), 4)
    change = after[:, others].mean(0) - before[:, others].mean(0) if others else np.zeros(0)
    flips = before[:, others] != after[:, others]
    out["leakage"] = round(float(np.abs(change).mean()), 4) if others else None
    out["churn"] = round(float(flips.any(1).mean()), 4) if others else None
    out["flips"] = {names[k]: round(float(f), 4) for k, f in zip(others, flips.mean(0))}
    ranked = sorted(zip(others, change), key=lambda kv: -abs(kv[1]))
    out["largest_leaks"] = {names[k]: round(float(v), 4) for k, v in ranked[:3]}
    return out


def control_quality(before: np.ndarray, moved: np.ndarray, judged: Sequence[int],
                    names: Sequence[str]) -> dict[str, Any]:
    """The random-direction control from one classifier's verdicts: `before` bool [N, A], `moved` bool [K, N, A]
    (K random unit directions, each moved by the same amount on the same faces). Per judged attribute A: `success`
    (prevalence after a random move, mean over the K), `churn` for A's row (share of faces with a flip of an
    attribute other than A, mean over the K) and `flips` (A's own flip rate); `churn_all` over every judged
    attribute and the net `leakage` of a random move."""
    before, moved = np.asarray(before, bool), np.asarray(moved, bool)
    if not len(moved):
        return {"directions": 0}
    flips = moved[:, :, judged] != before[None, :, judged]  # [K, N, J]
    change = moved[:, :, judged].mean(1) - before[None, :, judged].mean(1)  # [K, J]
    churn = {}
    for j, k in enumerate(judged):
        rest = [i for i in range(len(judged)) if i != j]
        churn[names[k]] = round(float(flips[:, :, rest].any(2).mean()), 4) if rest else None
    return {"directions": int(len(moved)),
            "before": {names[k]: round(float(before[:, k].mean()), 4) for k in judged},
            "success": {names[k]: round(float(moved[:, :, k].mean()), 4) for k in judged},
            "churn": churn,
            "flips": {names[k]: round(float(flips[:, :, j].mean()), 4) for j, k in enumerate(judged)},
            "churn_all": round(float(flips.any(2).mean()), 4) if judged else None,
            "leakage": round(float(np.abs(change).mean()), 4) if judged else None}


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference <= 0:
        return None
    return round(value / reference, 3)


def _cell(verdicts: Mapping[str, Mapping[str, Any]], name: str, own: int, judged_cols: Sequence[int],
          names: Sequence[str], graded_by: str, fitted_with: str, control_churn: float | None) -> dict[str, Any]:
    """One direction of an attribute graded at one step: the grading classifier's figures, the churn ratio to the
    control's churn for the row, the fitting classifier's figures (`fit`) and the agreement of the two."""
    graded = verdicts[graded_by]
    cell = edit_quality(graded["base"], graded["moved"][name], own, judged_cols, names)
    cell["churn_ratio"] = _ratio(cell["churn"], control_churn)
    fit = verdicts.get(fitted_with) if fitted_with != graded_by else None
    if fit is not None:
        mine = edit_quality(fit["base"], fit["moved"][name], own, judged_cols, names)
        cell["fit"] = {k: mine[k] for k in ("before", "success", "leakage", "churn")}
        cell["agreement"] = round(float(np.mean(graded["moved"][name][:, own] == fit["moved"][name][:, own])), 4)
    return cell


def _control(verdicts: Mapping[str, Mapping[str, Any]], judged_cols: Sequence[int], names: Sequence[str],
             graded_by: str, fitted_with: str) -> dict[str, Any]:
    graded = verdicts[graded_by]
    control = control_quality(graded["base"], graded["control"], judged_cols, names)
    fit = verdicts.get(fitted_with) if fitted_with != graded_by else None
    if fit is not None:
        control["fit"] = {k: v for k, v in control_quality(fit["base"], fit["control"], judged_cols, names).items()
                          if k in ("success", "churn", "churn_all", "leakage")}
    return control


def quality_table(directions: Mapping[str, Mapping[str, Any]], names: Sequence[str], judged: Sequence[str],
                  verdicts: Mapping[str, Mapping[str, Any]], amount: float, graded_by: str = "judge",
                  fitted_with: str = "classifier", goals: Mapping[str, float] | None = None,
                  control_seed: int | None = None,
                  at_suggested: Mapping[float, Mapping[str, Mapping[str, Any]]] | None = None) -> dict[str, Any]:
    """The quality matrix of a set of directions ({name: {kind, attribute, suggested_amount?}}; SeFa ones have
    attribute None) from the verdicts of `measure_verdicts` at `amount`: rows = judged attributes, one cell per
    kind, graded by `graded_by` (the judge), with the fitting classifier's own figures beside (`fit`, when its
    verdicts are there) and their agreement; the control row; the linear ceiling of each row and success relative
    to it; SeFa's largest changes. Churn ratios compare each cell with the control's churn for the same row, moved
    as far. `at_suggested` ({step: verdicts of the directions whose suggested step it is, and of the control at
    that step}) adds each such cell's `suggested` figures: the same grading at the slider's own step."""
    column = {n: j for j, n in enumerate(names)}
    judged_cols = [column[n] for n in judged]
    control = _control(verdicts, judged_cols, names, graded_by, fitted_with)
    if control_seed is not None:
        control["seed"] = int(control_seed)
    controls = {float(a): _control(v, judged_cols, names, graded_by, fitted_with)
                for a, v in (at_suggested or {}).items()}
    rows: dict[str, dict[str, Any]] = {name: {} for name in judged}
    sefa: dict[str, Any] = {}
    for name, entry in directions.items():
        if name not in verdicts[graded_by]["moved"]:
            continue
        own = entry.get("attribute")
        if own is None:
            sefa[name] = edit_quality(verdicts[graded_by]["base"], verdicts[graded_by]["moved"][name], None,
                                      judged_cols, names)
            continue
        if own not in rows:
            continue
        cell = _cell(verdicts, name, column[own], judged_cols, names, graded_by, fitted_with,
                     (control.get("churn") or {}).get(own))
        step = entry.get("suggested_amount")
        if step is not None and float(step) in controls and name in at_suggested[float(step)][graded_by]["moved"]:
            mine = _cell(at_suggested[float(step)], name, column[own], judged_cols, names, graded_by, fitted_with,
                         (controls[float(step)].get("churn") or {}).get(own))
            mine["ceiling"] = round(linear_ceiling(mine["before"], float(step)), 4)
            mine["of_ceiling"] = _ratio(mine["success"], mine["ceiling"])
            cell["suggested"] = {"amount": float(step), **{k: v for k, v in mine.items() if k != "largest_leaks"}}
        rows[own][entry["kind"]] = cell
    ceilings = {}
    for name, row in rows.items():
        before = control.get("before", {}).get(name)
        if before is None:
            continue
        ceilings[name] = round(linear_ceiling(before, amount), 4)
        for cell in row.values():
            cell["of_ceiling"] = _ratio(cell["success"], ceilings[name])
    table = {"amount": float(amount), "graded_by": graded_by, "fitted_with": fitted_with, "judged": list(judged),
             "rows": rows, "control": control, "sefa": sefa, "linear_ceiling": ceilings, "goals": dict(goals or {})}
    if controls:
        table["control_at"] = {f"{a:g}": {k: c[k] for k in ("churn", "churn_all") if k in c}
                               for a, c in sorted(controls.items())}
    return table


KINDS_SHOWN = ("mean_difference", "boundary", "conditional")


def meets_goals(cell: Mapping[str, Any], goals: Mapping[str, float]) -> bool | None:
    """Whether a graded cell (or its `suggested` figures) meets the goals: success ≥ goals["success"] and churn
    ratio ≤ goals["churn_ratio"]; None when the cell lacks a figure or there are no goals."""
    success, ratio = cell.get("success"), cell.get("churn_ratio")
    if success is None or ratio is None or "success" not in goals or "churn_ratio" not in goals:
        return None
    return success >= goals["success"] and ratio <= goals["churn_ratio"]


def format_quality(table: Mapping[str, Any]) -> str:
    """The matrix as text: one line per judged attribute and kind — success by the judge and by the fitting
    classifier, their agreement, net leakage, churn, churn ratio to the control, ceiling and success/ceiling, then
    the same at the slider's suggested step — then the default sliders against the goals, the control row and
    SeFa's largest changes."""
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    amount = table["amount"]
    goals = table.get("goals") or {}
    graded, fitted = table.get("graded_by", "judge"), table.get("fitted_with", "classifier")
    who = (f"graded by the {graded} (not used to fit the directions); the {fitted} that fitted them beside it"
           if graded != fitted else f"graded by the {graded} that fitted the directions (no independent judge)")
    lines = [f"quality after {amount:+g} σ, {who}. Judged attributes: {', '.join(table['judged']) or 'none'}.",
             f"goals: success >= {goals.get('success', '-')} by the {graded}, churn <= {goals.get('churn_ratio', '-')}"
             " x the random control's"]
    head = (f"{'attribute':<12} {'kind':<15} {'before':>6} {'succ':>5} {'fit':>5} {'agree':>5} {'leak':>5} "
            f"{'churn':>5} {'fit ch':>6} {'ratio':>5} {'ceil':>5} {'/ceil':>5} | {'step':>4} {'succ':>5} {'fit':>5} "
            f"{'churn':>5} {'ratio':>5} {'/ceil':>5}")
    lines += [head, "-" * len(head)]
    ceilings = table.get("linear_ceiling", {})
    for name, row in table["rows"].items():
        for kind in KINDS_SHOWN:
            q = row.get(kind)
            if q is None:
                continue
            f, at = q.get("fit") or {}, q.get("suggested") or {}
            lines.append(f"{name:<12} {kind:<15} {fmt(q.get('before'), '.2f'):>6} {fmt(q.get('success'), '.2f'):>5} "
                         f"{fmt(f.get('success'), '.2f'):>5} {fmt(q.get('agreement'), '.2f'):>5} "
                         f"{fmt(q.get('leakage'), '.3f'):>5} {fmt(q.get('churn'), '.2f'):>5} "
                         f"{fmt(f.get('churn'), '.2f'):>6} {fmt(q.get('churn_ratio'), '.2f'):>5} "
                         f"{fmt(ceilings.get(name), '.2f'):>5} {fmt(q.get('of_ceiling'), '.2f'):>5} | "
                         f"{fmt(at.get('amount'), '+.1f'):>4} {fmt(at.get('success'), '.2f'):>5} "
                         f"{fmt((at.get('fit') or {}).get('success'), '.2f'):>5} {fmt(at.get('churn'), '.2f'):>5} "
                         f"{fmt(at.get('churn_ratio'), '.2f'):>5} {fmt(at.get('of_ceiling'), '.2f'):>5}")
    default = table.get("default_kind")
    if default and goals:
        verdicts = []
        for name, row in table["rows"].items():
            cell = row.get(default) or {}
            at = cell.get("suggested") or cell
            ok = meets_goals(at, goals)
            if ok is not None:
                verdicts.append(f"{name} {'pass' if ok else 'FAIL'} ({at.get('success', 0):.2f}, "
                                f"{at.get('churn_ratio', 0):.2f}x at {at.get('amount', amount):+g})")
        lines += ["", f"default sliders ({default}) at their suggested step against the goals: " + "; ".join(verdicts)]
    control = table.get("control") or {}
    if control.get("directions"):
        fit = control.get("fit") or {}
        seed = f", seed {control['seed']}" if "seed" in control else ""
        at_steps = ", ".join(f"+{a}: {fmt(c.get('churn_all'), '.2f')}"
                             for a, c in (table.get("control_at") or {}).items())
        lines += ["", f"random control: {control['directions']} random unit directions{seed}, {amount:+g} σ on the "
                      f"same faces — churn over all judged attributes {fmt(control.get('churn_all'), '.2f')} (by the "
                      f"{fitted} {fmt(fit.get('churn_all'), '.2f')}), net leakage {fmt(control.get('leakage'), '.3f')}"
                      + (f"; churn at the suggested steps {at_steps}" if at_steps else "")]
        lines.append(f"{'attribute':<12} {'before':>6} {'after':>6} {'flips':>6} {'churn (others)':>14}")
        for name in table["judged"]:
            lines.append(f"{name:<12} {fmt(control['before'].get(name), '.2f'):>6} "
                         f"{fmt(control['success'].get(name), '.2f'):>6} {fmt(control['flips'].get(name), '.3f'):>6} "
                         f"{fmt(control['churn'].get(name), '.2f'):>14}")
    if table.get("sefa"):
        lines += ["", f"SeFa (no attribute): largest prevalence changes and churn after {amount:+g} σ"]
        for name, q in table["sefa"].items():
            lines.append(f"{name:<12} churn {fmt(q.get('churn'), '.2f')}: "
                         + ", ".join(f"{k} {v:+.2f}" for k, v in q["largest_leaks"].items()))
    lines.append("succ: share with the attribute after the move, by the grading classifier; fit: by the one that "
                 "fitted the direction; agree: share of moved faces where both give the same verdict; leak: mean "
                 "|change of prevalence| of the other judged attributes; churn: share of faces whose verdict on any "
                 "other judged attribute flips ('fit ch': by the fitting classifier); ratio: churn / the random "
                 "control's at the same step; ceil: best success of any direction were the attribute linear in z; "
                 "/ceil: success / ceil; right of |: the same at the slider's suggested step.")
    return "\n".join(lines)


def badge(table: Mapping[str, Any] | None, attribute: str | None, kind: str) -> dict[str, Any] | None:
    """The studio's quality badge of one slider, from a stored quality table: the direction graded at its suggested
    step when it has one (else at the table's step) — success by the grading network (the judge), churn and its
    ratio to the random control moved as far, success relative to the linear ceiling, the agreement with the
    fitting classifier — and whether that meets the table's goals. A table from before the judge (no control row)
    gives its success and net leakage by the fitting classifier, with `meets_goals` None. None when the table does
    not grade this attribute and kind (unreliable attribute, SeFa)."""
    if not table or attribute is None:
        return None
    cell = ((table.get("rows") or {}).get(attribute) or {}).get(kind)
    if not cell:
        return None
    goals = table.get("goals") or {}
    if "control" not in table:  # dcgan-directions/2 from before the judge: success / leakage by its own classifier
        return {"graded_by": "classifier", "amount": table.get("amount"), "success": cell.get("success"),
                "leakage": cell.get("leakage"), "goals": goals, "meets_goals": None}
    at = cell.get("suggested") or {**cell, "amount": table.get("amount"),
                                   "ceiling": (table.get("linear_ceiling") or {}).get(attribute)}
    return {"graded_by": table.get("graded_by", "judge"), "amount": at.get("amount"), "success": at.get("success"),
            "fit_success": (at.get("fit") or {}).get("success"), "agreement": at.get("agreement"),
            "churn": at.get("churn"), "churn_ratio": at.get("churn_ratio"), "ceiling": at.get("ceiling"),
            "of_ceiling": at.get("of_ceiling"), "goals": goals, "meets_goals": meets_goals(at, goals)}
