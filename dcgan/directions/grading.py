"""The quality of the directions, graded by the independent judge (dcgan.edit_quality): which attributes are judged,
the quality table of a document's directions beside a random control (`grade_directions`), and the same measured
afresh from a model's exported networks alone (`measure_quality`, bench/directions_quality.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dcgan import fileio
from dcgan.directions.classifiers import AttributeClassifier, _to_unit_range
from dcgan.directions.config import DirectionsConfig
from dcgan.directions.kinds import DEFAULT_KIND
from dcgan.directions.store import (
    DIRECTIONS_FILE,
    DirectionsFileError,
    classifier_path_for,
    directions_of,
    judge_path_for,
    read_directions,
)


# -- quality: graded by the independent judge (dcgan.edit_quality) -------------------------------------------------
def judged_attributes(doc: Mapping[str, Any], min_balanced_accuracy: float | None = None) -> list[str]:
    """The attributes a quality table grades: those whose fitting classifier and (when there is one) judge both
    reach the held-out balanced accuracy (default: the document's `reliable_accuracy`, else 0.8)."""
    if min_balanced_accuracy is None:
        min_balanced_accuracy = float(doc.get("config", {}).get("reliable_accuracy", 0.8))
    out = []
    for name, entry in doc["attributes"].items():
        scores = [(entry.get(role) or {}).get("balanced_accuracy") for role in ("classifier", "judge")
                  if role == "classifier" or "judge" in entry]
        if all(b is not None and b >= min_balanced_accuracy for b in scores):
            out.append(name)
    return out


def _quality_goals(config: Mapping[str, Any]) -> dict[str, float]:
    defaults = DirectionsConfig()
    return {"success": float(config.get("success_goal", defaults.success_goal)),
            "churn_ratio": float(config.get("churn_ratio_goal", defaults.churn_ratio_goal))}


def grade_directions(doc: Mapping[str, Any], generate: Callable[[np.ndarray], np.ndarray],
                     scorers: Mapping[str, Callable[[np.ndarray], np.ndarray]], names: Sequence[str],
                     z: np.ndarray, threshold: float, amount: float, control_directions: int,
                     control_seed: int, measured_control: Mapping[float, Mapping[str, Any]] | None = None,
                     ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The quality table of a document's directions on the faces of `z`: each direction and `control_directions`
    random unit directions (numpy default_rng(control_seed)) moved by `amount`, every picture scored by each of
    `scorers` ({"judge": ..., "classifier": ...}; without a judge the classifier grades itself); then each
    direction with a `suggested_amount` again at that step, beside the same control moved as far.
    `measured_control` ({step: measure_verdicts(...) of that control on the same z with the same scorers}) spares
    measuring it again. Returns the table (dcgan.edit_quality.quality_table) and the verdicts at `amount`."""
    from dcgan import edit_quality

    entries = directions_of(doc)
    vectors = {name: np.asarray(e["vector"], np.float32) for name, e in entries.items()}
    control = edit_quality.random_unit_directions(control_directions, z.shape[1], control_seed)

    def verdicts_at(step: float, subset: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        if measured_control is None or step not in measured_control:
            return edit_quality.measure_verdicts(generate, scorers, threshold, z, subset, step, control)
        out = edit_quality.measure_verdicts(generate, scorers, threshold, z, subset, step, control[:0])
        for role in out:
            out[role]["control"] = measured_control[step][role]["control"]
        return out

    verdicts = verdicts_at(amount, vectors)
    by_step: dict[float, dict[str, np.ndarray]] = {}
    for name, entry in entries.items():
        if entry.get("suggested_amount") is not None:
            by_step.setdefault(float(entry["suggested_amount"]), {})[name] = vectors[name]
    at_suggested = {step: verdicts if step == amount else verdicts_at(step, subset)
                    for step, subset in sorted(by_step.items())}
    graded_by = "judge" if "judge" in scorers else "classifier"
    table = edit_quality.quality_table(entries, names, judged_attributes(doc), verdicts, amount, graded_by=graded_by,
                                       fitted_with="classifier", goals=_quality_goals(doc.get("config", {})),
                                       control_seed=control_seed, at_suggested=at_suggested)
    table["default_kind"] = DEFAULT_KIND
    return table, verdicts


def measure_quality(saved_model_dir: str, samples: int = 1000, seed: int = 1000, amount: float | None = None,
                    directions_path: str | None = None, classifier_dir: str | None = None,
                    judge_dir: str | None = None, control_directions: int | None = None) -> dict[str, Any]:
    """The quality table of a model's stored directions measured afresh: `samples` new z (numpy default_rng(seed),
    a seed the directions step did not use), each direction and the random control applied at +amount, the faces
    scored by the exported judge and classifier (no training code). A model exported before the judge existed is
    graded by its classifier (`graded_by` says so). Returns the table plus `samples`, `seed`, and the grading
    network's verdicts on the unmoved faces (`base_verdicts` bool [N, A] in the order of `names`) and
    `base_prevalence` (for satisfaction rates)."""
    from dcgan import images as imlib
    from dcgan.export import LoadedGenerator

    directions_path = directions_path or fileio.join(saved_model_dir, DIRECTIONS_FILE)
    doc = read_directions(directions_path)
    classifier = AttributeClassifier(classifier_dir or classifier_path_for(directions_path))
    judge_dir = judge_dir or judge_path_for(directions_path)
    judge = AttributeClassifier(judge_dir) if fileio.exists(fileio.join(judge_dir, "saved_model.pb")) else None
    if judge is not None and judge.names != classifier.names:
        raise DirectionsFileError(f"{judge_dir} scores {judge.names}, the classifier {classifier.names}")
    generator = LoadedGenerator(saved_model_dir)
    if generator.z_dim != doc["z_dim"]:
        raise DirectionsFileError(f"{directions_path} is for z of length {doc['z_dim']}, the model takes "
                                  f"{generator.z_dim}")
    config = doc.get("config", {})
    amount = float(config.get("quality_amount", 2.0)) if amount is None else float(amount)
    if control_directions is None:
        control_directions = int(config.get("control_directions", DirectionsConfig.control_directions))
    z = np.random.default_rng(seed).standard_normal((samples, generator.z_dim)).astype(np.float32)

    def generate(batch: np.ndarray) -> np.ndarray:
        return _to_unit_range(imlib.to_uint8(generator.images(batch)))

    scorers = {"classifier": classifier.scores, **({"judge": judge.scores} if judge is not None else {})}
    table, verdicts = grade_directions(doc, generate, scorers, classifier.names, z, classifier.threshold, amount,
                                       control_directions, seed + 1)
    base = verdicts[table["graded_by"]]["base"]
    table.update(samples=samples, seed=seed, base_verdicts=base, names=list(classifier.names),
                 base_prevalence={n: round(float(base[:, j].mean()), 4) for j, n in enumerate(classifier.names)})
    return table
