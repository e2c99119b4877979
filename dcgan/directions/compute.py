"""The whole computation (`compute_directions`): train the classifier and the judge on the real labelled examples,
fit every kind of direction on generated samples, measure their effect, grade them, export the networks; and
`compute_and_store_directions`, what the pipeline's Trainer calls right after the export."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from dcgan import fileio
from dcgan.directions.classifiers import (
    CLASSIFIER_ARCHITECTURE,
    JUDGE_ARCHITECTURE,
    _to_unit_range,
    build_classifier,
    build_judge,
    classify,
    export_attribute_classifier,
    heldout_metrics,
    train_classifier,
)
from dcgan.directions.config import DirectionsConfig
from dcgan.directions.effect import measure_effect, suggested_amount
from dcgan.directions.grading import grade_directions
from dcgan.directions.kinds import (
    KIND_SUFFIX,
    conditional_direction,
    fit_boundary,
    fit_direction,
    projection_kernel,
    sefa_directions,
)
from dcgan.directions.labels import (
    JUDGE_SPLIT,
    NoAttributeLabels,
    derive_attributes,
    judge_half,
    label_cooccurrence,
    label_matrix,
    load_labelled_data,
)
from dcgan.directions.store import (
    CLASSIFIER_DIR,
    FORMAT,
    JUDGE_DIR,
    default_classifier_dir,
    default_judge_dir,
    write_directions,
)

log = logging.getLogger("dcgan.directions")  # one logger for the package, named as before the split


# -- the whole computation --------------------------------------------------------------------------------------------
def compute_directions(saved_model_dir: str, train_files: Sequence[str], eval_files: Sequence[str] = (),
                       config: DirectionsConfig | None = None, export_classifier_to: str | None = None,
                       export_judge_to: str | None = None) -> dict[str, Any]:
    """Train the classifier (and, with `config.judge`, the independent judge on the other half of the training
    examples) on the real labelled data, fit the directions of every kind on generated samples labelled by the
    classifier, measure their effect on fresh samples, and grade them with the judge (quality table). Returns the
    directions.json document (not written; see `write_directions`). With `export_classifier_to` / `export_judge_to`
    (normally `<saved_model_dir>/assets.extra/attribute_classifier` and `.../attribute_judge`,
    `default_classifier_dir` / `default_judge_dir`), the networks are exported there as SavedModels."""
    from dcgan import edit_quality
    from dcgan import images as imlib
    from dcgan.export import LoadedGenerator

    config = (config or DirectionsConfig()).validate()
    started = time.monotonic()
    generator = LoadedGenerator(saved_model_dir)
    height, _, channels = generator.metadata.get("image_shape") or _probe_shape(generator)
    data = load_labelled_data(train_files, eval_files, size=int(height), channels=int(channels),
                              max_examples=config.max_examples, heldout_fraction=config.heldout_fraction)
    attributes = derive_attributes(data.labels)
    if not attributes:
        names = sorted({k for labels in data.labels for k in labels})
        raise NoAttributeLabels(f"none of the labels ({', '.join(names) or 'none'}) is a yes/no attribute "
                                "(0/1 or ±1 flags, or the avatars' facial_hair)")
    y = label_matrix(data.labels, attributes)
    train = ~data.heldout
    skipped: dict[str, str] = {}
    keep = []
    for j, attribute in enumerate(attributes):
        pos, neg = int((y[train, j] == 1).sum()), int((y[train, j] == 0).sum())
        if pos < config.min_positives or neg < config.min_positives:
            skipped[attribute.name] = (f"too few training examples on one side ({pos} with, {neg} without; "
                                       f"need {config.min_positives} each)")
        else:
            keep.append(j)
    if not keep:
        raise NoAttributeLabels("no attribute has enough positive and negative examples: "
                                + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    attributes = [attributes[j] for j in keep]
    y = y[:, keep]
    names = [a.name for a in attributes]
    # The two networks take disjoint halves of the training examples (judge_half), so the judge has seen none of
    # the examples behind the directions it grades; both are measured on the same held-out examples.
    for_judge = train & judge_half(data.keys) if config.judge else np.zeros_like(train)
    for_classifier = train & ~for_judge
    networks = {"classifier": (for_classifier, build_classifier, config.seed + 2)}
    if config.judge:
        networks["judge"] = (for_judge, build_judge, config.seed + 3)
    models, training, metrics = {}, {}, {}
    for role, (rows, build, seed) in networks.items():
        log.info("directions: training the attribute %s on %d real examples (%s)", role, int(rows.sum()),
                 ", ".join(names))
        models[role], training[role] = train_classifier(
            data.images[rows], y[rows], epochs=config.epochs, batch_size=config.batch_size,
            learning_rate=config.learning_rate, min_steps=config.min_steps, seed=seed, build=build)
        heldout_scores = classify(models[role], _to_unit_range(data.images[data.heldout]))
        metrics[role] = {name: heldout_metrics(y[data.heldout, j], heldout_scores[:, j], config.threshold)
                         for j, name in enumerate(names)}
    model, classifier_metrics = models["classifier"], metrics["classifier"]

    def generate(z: np.ndarray) -> np.ndarray:  # what a viewer sees: the generator's output quantised to uint8
        return _to_unit_range(imlib.to_uint8(generator.images(z)))

    def score(images: np.ndarray) -> np.ndarray:
        return classify(model, images)

    phases = {role: training[role]["seconds"] for role in training}  # where the seconds go (doc["phases"])
    mark = time.monotonic()
    z_dim = generator.z_dim
    z_fit = np.random.default_rng(config.seed).standard_normal((config.samples, z_dim)).astype(np.float32)
    log.info("directions: labelling %d generated samples", config.samples)
    fit_scores = score(generate(z_fit))
    reliable = [n for n in names if (classifier_metrics[n].get("balanced_accuracy") or 0) >= config.reliable_accuracy]

    entries: dict[str, dict[str, Any]] = {}
    normals: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        vector, info = fit_direction(z_fit, fit_scores[:, j], config.threshold, config.min_group)
        entries[name] = {"kind": "mean_difference", "attribute": name, "vector": vector, "fit": info}
        normal, info = fit_boundary(z_fit, fit_scores[:, j], config.threshold, config.min_group, config.boundary_l2)
        normals[name] = normal
        entries[name + KIND_SUFFIX["boundary"]] = {"kind": "boundary", "attribute": name, "vector": normal,
                                                   "fit": info}
    for name in names:
        fixed = [n for n in reliable if n != name]
        try:
            vector, cosine = conditional_direction(normals[name], [normals[n] for n in fixed])
        except ValueError as e:
            log.info("directions: no conditional direction for %s: %s", name, e)
            continue
        entries[name + KIND_SUFFIX["conditional"]] = {"kind": "conditional", "attribute": name, "vector": vector,
                                                      "fixed": fixed, "cosine_to_boundary": round(cosine, 4)}
    try:
        kernel = projection_kernel(generator.module, z_dim)
        sefa, eigenvalues = sefa_directions(kernel, config.sefa_components)
        total = float(np.sum(np.square(kernel))) or 1.0  # the trace of AᵀA = the sum of all its eigenvalues
    except ValueError as e:
        log.info("directions: no SeFa directions: %s", e)
        sefa, eigenvalues, total = np.zeros((0, z_dim), np.float32), np.zeros(0), 1.0
    for k, (vector, value) in enumerate(zip(sefa, eigenvalues)):
        entries[f"SeFa {k + 1}"] = {"kind": "sefa", "attribute": None, "vector": vector,
                                    "eigenvalue": round(float(value), 6), "rank": k + 1}

    phases["fit"], mark = round(time.monotonic() - mark, 1), time.monotonic()
    z_eval = np.random.default_rng(config.seed + 1).standard_normal((config.eval_samples, z_dim)).astype(np.float32)
    log.info("directions: measuring the effect of %d directions on %d fresh samples", len(entries),
             config.eval_samples)
    column = {name: j for j, name in enumerate(names)}
    amounts = sorted(set(config.amounts) | {0.0, float(config.quality_amount)})  # the effect at the quality step too
    reliable_columns = [column[n] for n in reliable]
    effects = measure_effect(generate, score, z_eval, np.stack([e["vector"] for e in entries.values()]),
                             amounts, names, config.threshold,
                             [None if e["attribute"] is None else column[e["attribute"]] for e in entries.values()],
                             judged=reliable_columns)
    # The random control on the same faces at every positive amount: what a step that size does, against which
    # each slider's suggested step keeps its churn (suggested_amount) — by the classifier's verdicts alone; scored
    # by the judge too, the same pictures serve again as the quality table's control (grade_directions).
    scorers = {role: (lambda images, m=m: classify(m, images)) for role, m in models.items()}
    control = edit_quality.random_unit_directions(config.control_directions, z_dim, config.seed + 4)
    measured_control = {a: edit_quality.measure_verdicts(generate, scorers, config.threshold, z_eval, {}, a, control)
                        for a in amounts if a > 0}
    control_churn = {a: edit_quality.control_quality(v["classifier"]["base"], v["classifier"]["control"],
                                                     reliable_columns, names)["churn"]
                     for a, v in measured_control.items()}
    for entry, effect in zip(entries.values(), effects):
        entry["effect"] = effect
        entry["vector"] = [round(float(v), 7) for v in entry["vector"]]
        if entry["attribute"] is not None:
            entry["suggested_amount"] = suggested_amount(
                effect, config.suggest_success, {a: c.get(entry["attribute"]) for a, c in control_churn.items()},
                config.churn_ratio_goal)

    phases["effect"], mark = round(time.monotonic() - mark, 1), time.monotonic()
    cooccurrence = label_cooccurrence(y[train])
    result_attributes: dict[str, Any] = {}
    for j, attribute in enumerate(attributes):
        real = y[train, j]
        known_real = real[real >= 0]
        result_attributes[attribute.name] = {
            "definition": attribute.definition,
            "classifier": classifier_metrics[attribute.name],
            **({"judge": metrics["judge"][attribute.name]} if "judge" in metrics else {}),
            "reliable": attribute.name in reliable,
            "positive_rate": {
                "real": round(float(np.mean(known_real > 0.5)), 4) if len(known_real) else None,
                "generated": round(float(np.mean(fit_scores[:, j] >= config.threshold)), 4),
            },
            "normal": [round(float(v), 7) for v in normals[attribute.name]],
        }
    doc = {
        "format": FORMAT,
        "z_dim": int(z_dim),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"saved_model_dir": (saved_model_dir if fileio.is_remote(saved_model_dir)
                                      else os.path.abspath(saved_model_dir)),
                  "image_shape": [int(height), int(height), int(channels)],
                  "step": generator.metadata.get("step")},
        "data": {"description": data.description, "train_examples": int(train.sum()),
                 "heldout_examples": int(data.heldout.sum()), "heldout": data.heldout_rule,
                 "classifier_examples": int(for_classifier.sum()), "judge_examples": int(for_judge.sum()),
                 "split": (JUDGE_SPLIT if config.judge else "the classifier trains on every training example")},
        "classifier": {"architecture": CLASSIFIER_ARCHITECTURE, "role": "fits the directions",
                       "input": f"{height}x{height}x{channels} in [-1, 1]", "saved_model": CLASSIFIER_DIR,
                       "seed": config.seed + 2, **training["classifier"]},
        "method": {
            "mean_difference": "normalise(mean z(with) - mean z(without)) over generated samples labelled by the "
                               "classifier",
            "boundary": "unit normal of a class-balanced L2 logistic regression separating the labelled samples' z "
                        "(InterFaceGAN)",
            "conditional": "the boundary normal with the normals of the other reliable attributes projected out "
                           "(InterFaceGAN conditional manipulation); `fixed` names them",
            "sefa": "top eigenvectors of A^T A, A = the generator's first projection (SeFa); unsupervised",
            "effect": "measured on fresh samples (eval_seed) with the classifier",
            "suggested_amount": "per attribute direction, by the classifier on the effect samples: the smallest "
                                "positive amount at which it calls at least config.suggest_success of the faces "
                                "positive with churn at most config.churn_ratio_goal x the random control's "
                                "(`control`), else the smallest that reaches it, else the amount where most are",
            "quality": ("graded on the fresh samples by the judge, which was trained on the other half of the "
                        "examples and did not fit the directions, beside the classifier's own verdicts; churn and "
                        "the random control as in dcgan.edit_quality" if config.judge else
                        "graded on the fresh samples by the classifier that fitted the directions (no judge)"),
        },
        "config": {**asdict(config), "amounts": list(config.amounts)},
        "samples": {"fit": config.samples, "fit_seed": config.seed, "eval": config.eval_samples,
                    "eval_seed": config.seed + 1, "control_seed": config.seed + 4,
                    "z": "numpy default_rng(seed).standard_normal"},
        "amounts": [float(a) for a in amounts],
        "attributes": result_attributes,
        "directions": entries,
        "sefa": {"components": len(sefa), "explained": [round(float(v) / total, 4) for v in eigenvalues]},
        "control": {"directions": config.control_directions, "seed": config.seed + 4, "by": "classifier",
                    "churn": {f"{a:g}": c for a, c in control_churn.items()}},
        "skipped": skipped,
    }
    if "judge" in models:
        doc["judge"] = {"architecture": JUDGE_ARCHITECTURE, "role": "grades the directions (quality)",
                        "input": f"{height}x{height}x{channels} in [-1, 1]", "saved_model": JUDGE_DIR,
                        "seed": config.seed + 3, **training["judge"]}
    log.info("directions: grading %d directions and %d random ones on the %d fresh samples", len(entries),
             config.control_directions, config.eval_samples)
    doc["quality"], _ = grade_directions(doc, generate, scorers, names, z_eval, config.threshold,
                                         float(config.quality_amount), config.control_directions, config.seed + 4,
                                         measured_control)
    phases["quality"] = round(time.monotonic() - mark, 1)
    exports = {"classifier": (export_classifier_to, CLASSIFIER_DIR), "judge": (export_judge_to, JUDGE_DIR)}
    for role, model_of_role in models.items():
        out_dir, default = exports[role]
        if not out_dir:
            continue
        export_attribute_classifier(model_of_role, names, out_dir, {
            "role": role, "threshold": config.threshold, "classifier": metrics[role],
            "reliable": [n for n in names if (metrics[role][n].get("balanced_accuracy") or 0)
                         >= config.reliable_accuracy],
            "cooccurrence": cooccurrence, "image_shape": [int(height), int(height), int(channels)]})
        doc[role]["saved_model"] = default if out_dir == fileio.join(saved_model_dir, default) else out_dir
    doc["seconds"] = round(time.monotonic() - started, 1)
    doc["phases"] = phases
    return doc


def _probe_shape(generator) -> list[int]:
    return list(generator.images(np.zeros((1, generator.z_dim), np.float32)).shape[1:])


def compute_and_store_directions(saved_model_dir: str, train_files: Sequence[str], eval_files: Sequence[str] = (),
                                 config: DirectionsConfig | Mapping[str, Any] | None = None) -> tuple[str, dict]:
    """What the pipeline's Trainer calls after the export: compute the directions of the SavedModel from the
    labelled training data and store them beside it. Raises NoAttributeLabels when the data has no usable labels."""
    if isinstance(config, Mapping):
        config = DirectionsConfig.from_dict(config)
    result = compute_directions(saved_model_dir, train_files, eval_files, config,
                                export_classifier_to=default_classifier_dir(saved_model_dir),
                                export_judge_to=default_judge_dir(saved_model_dir))
    return write_directions(saved_model_dir, result), result
