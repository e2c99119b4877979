"""The studio's attribute endpoints: "specify, then generate" and conditional directions.

- `POST /api/specify` — body: `constraints` {attribute: true/false}, `n`, `seed`, `budget` (candidates drawn at
  most); answer: `faces` (seed, z, png, scores, confidence), `satisfaction` (rates), `complete`.
- `POST /api/directions/conditional` — body: `attribute`, `fixed` (attribute names kept unchanged); answer: the unit
  `vector`, its `name`, `fixed`, `cosine_to_boundary`.

`/api/specify` draws candidate faces seed, seed+1, … (z from the seed, as `generate` does) in batches of
`SPECIFY_BATCH`, renders them through the model server (`serving_default`), scores the pictures a viewer sees (uint8)
with the version's exported attribute classifier (dcgan.directions.AttributeClassifier, `assets.extra/
attribute_classifier` beside directions.json), and stops once `n` faces satisfy every constraint or `budget`
candidates were drawn. It answers the `n` most confident of them (confidence = Π p(constraint met)), each with its
seed, z and scores, and the satisfaction rate measured on all candidates (per constraint and jointly). Bad input is a
400: unknown attribute names (the known ones listed), a constraint given twice with different values or a pair that
never occurs together in the labelled training faces (contradictory), and nothing found within the budget
(unsatisfiable: which constraint could not be met, and the best rate seen without it).

`/api/directions/conditional` projects the other attributes' boundary normals (stored in directions.json /2) out of
the attribute's normal (dcgan.directions.conditional_direction): moving along the answer keeps the fixed
attributes' linear scores unchanged.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from pydantic import Field

from serving.studio.backend import ModelBackend, Resolved, StudioError, Target, _encode_images
from serving.studio.dependencies import Backend, _bad, _Body, body_schema, envelope, json_body, target_of

SPECIFY_BATCH = 256          # candidates rendered and scored per model-server call
DEFAULT_BUDGET = 2048        # candidates drawn at most, unless the request asks for fewer/more
MAX_BUDGET = 8192
MAX_N = 32
CONTRADICTION_EXPECTED = 10.0  # a pair never seen together although independence predicts this many: contradictory

router = APIRouter(prefix="/api")


class SpecifyBody(_Body):
    constraints: dict[str, Any]
    n: int = 8
    seed: int = Field(0, ge=0, le=2**53 - 1)
    budget: int = DEFAULT_BUDGET


class ConditionalBody(_Body):
    attribute: str = Field(max_length=128)
    fixed: list[str] = Field(default_factory=list, max_length=64)


# -- the classifier of a version ---------------------------------------------------------------------------------------
def _classifier(request: Request, backend: ModelBackend, resolved: Resolved):
    """The exported attribute classifier of the resolved version (cached by path and file time), beside its
    directions.json; 404 with the reason when there is none."""
    from dcgan.directions import CLASSIFIER_INFO, AttributeClassifier, DirectionsFileError, classifier_path_for

    found = backend.directions(resolved)
    if not found["path"]:
        raise StudioError(404, "no_attribute_classifier", f"No attribute classifier: {found['note']}")
    path = classifier_path_for(found["path"])
    info = os.path.join(path, CLASSIFIER_INFO)
    try:
        stamp = os.stat(info).st_mtime_ns
    except OSError:
        raise StudioError(404, "no_attribute_classifier",
                          f"No attribute classifier for version {resolved.version}: {path} does not exist "
                          "(`dcgan directions` exports it beside directions.json)") from None
    cache = getattr(request.app.state, "attribute_classifiers", None)
    if cache is None:
        cache = request.app.state.attribute_classifiers = {}
    cached = cache.get(path)
    if cached is None or cached[0] != stamp:
        try:
            cached = (stamp, AttributeClassifier(path))
        except (DirectionsFileError, OSError, ValueError, KeyError) as e:
            raise StudioError(404, "no_attribute_classifier", f"Attribute classifier unusable: {e}") from None
        cache[path] = cached
    return cached[1]


# -- constraints -------------------------------------------------------------------------------------------------------
def _duplicate_keys(raw: bytes) -> dict[str, list[Any]]:
    """Keys given more than once with different values inside `constraints` (JSON allows duplicate keys; Python's
    json keeps the last silently)."""
    duplicates: dict[str, list[Any]] = {}

    def hook(pairs):
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen and seen[key] != value and isinstance(value, bool):
                duplicates.setdefault(key, [seen[key]]).append(value)
            seen[key] = value
        return seen

    try:
        json.loads(raw, object_pairs_hook=hook)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return duplicates


def check_constraints(constraints: dict[str, Any], names: list[str], cooccurrence: dict[str, Any] | None,
                      duplicates: dict[str, list[Any]]) -> dict[str, bool]:
    """Validated {attribute: wanted}: 400 for an empty set, a non-boolean value, an unknown name, a contradiction."""
    if not constraints:
        raise _bad("constraints must name at least one attribute, e.g. {\"Smiling\": true}", "constraints")
    for name, value in constraints.items():
        if not isinstance(value, bool):
            raise _bad(f"constraints.{name} must be true or false, got {json.dumps(value)[:40]}", "constraints")
    unknown = [n for n in constraints if n not in names]
    if unknown:
        raise StudioError(400, "unknown_attribute", f"unknown attribute{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(repr(n) for n in unknown)}; known: {', '.join(names)}", "constraints")
    for name, values in duplicates.items():
        if name in constraints:
            raise StudioError(400, "contradictory_constraints", f"constraints give {name!r} twice, as "
                              f"{' and '.join(json.dumps(v) for v in values)}: a face cannot be both", "constraints")
    if cooccurrence:
        index = {n: i for i, n in enumerate(names)}
        counts = np.asarray(cooccurrence["counts"])
        items = list(constraints.items())
        for i, (a, va) in enumerate(items):
            for b, vb in items[i + 1:]:
                ia, ib = index[a], index[b]
                table = counts[ia, ib]
                total = int(table.sum())
                together = int(table[int(va), int(vb)])
                expected = float(table[int(va)].sum()) * float(table[:, int(vb)].sum()) / max(total, 1)
                if together == 0 and expected >= CONTRADICTION_EXPECTED:
                    raise StudioError(400, "contradictory_constraints",
                                      f"{a}={json.dumps(va)} and {b}={json.dumps(vb)} contradict each other: no "
                                      f"face among the {total} labelled training faces has both (about "
                                      f"{expected:.0f} would if they were independent)", "constraints")
    return {k: bool(v) for k, v in constraints.items()}


def _render_and_score(backend: ModelBackend, classifier, resolved: Resolved, seeds: list[int]):
    """z of the seeds, the served version's images (serving_default), the classifier's scores of their uint8
    pixels: z [B, z_dim], float images [B, H, W, C], scores [B, A]. Runs in a worker thread."""
    from dcgan.images import to_uint8
    from dcgan.latent import z_from_seeds

    z = z_from_seeds(seeds, resolved.z_dim)
    images = np.asarray(backend.client.images(z, model=resolved.model, version=resolved.version).outputs["images"])
    pixels = to_uint8(images).astype(np.float32) / 127.5 - 1.0
    return z, images, classifier.scores(pixels)


def satisfaction(scores: np.ndarray, columns: list[int], wanted: list[bool], threshold: float) -> np.ndarray:
    """[N, K] bool: candidate i meets constraint k."""
    has = scores[:, columns] >= threshold
    return has == np.asarray(wanted)[None, :]


def _unsatisfiable(constraints: dict[str, bool], met: np.ndarray, sampled: int) -> StudioError:
    """No candidate met every constraint: name the one whose removal leaves the most faces meeting the rest."""
    names = list(constraints)
    rates = met.mean(0)
    best_rest, culprit = -1.0, 0
    for k in range(len(names)):
        rest = np.delete(met, k, axis=1)
        rate = float(rest.all(1).mean()) if rest.shape[1] else 1.0
        if rate > best_rest or (rate == best_rest and rates[k] < rates[culprit]):
            best_rest, culprit = rate, k
    name = names[culprit]
    without = (f"; without it, {best_rest:.1%} of them met the rest (the best rate seen)" if len(names) > 1 else
               "")
    error = StudioError(400, "unsatisfiable",
                        f"no face among {sampled} sampled met every constraint: {name}={json.dumps(constraints[name])} "
                        f"could not be met together with the others ({rates[culprit]:.1%} of the faces met it alone"
                        f"{without}). Drop or flip it, or raise budget.", "constraints")
    error.details = [{"constraint": name, "value": constraints[name], "rate_alone": round(float(rates[culprit]), 4),
                      "best_rate_without_it": round(best_rest, 4), "sampled": sampled}]
    return error


# -- the endpoints -----------------------------------------------------------------------------------------------------
@router.post("/specify", openapi_extra=body_schema(SpecifyBody))
async def specify(request: Request, body: Annotated[SpecifyBody, Depends(json_body(SpecifyBody))],
                  backend: Backend) -> dict[str, Any]:
    if not 1 <= body.n <= MAX_N:
        raise _bad(f"n must be between 1 and {MAX_N} (got {body.n})", "n")
    if not body.n <= body.budget <= MAX_BUDGET:
        raise _bad(f"budget must be between n={body.n} and {MAX_BUDGET} (got {body.budget})", "budget")
    target: Target = target_of(backend, body)
    resolved = await backend.resolve(target)
    classifier = _classifier(request, backend, resolved)
    wanted = check_constraints(body.constraints, classifier.names, classifier.info.get("cooccurrence"),
                               _duplicate_keys(await request.body()))
    columns = [classifier.names.index(n) for n in wanted]
    values = list(wanted.values())
    found: list[tuple[float, int, np.ndarray, np.ndarray, np.ndarray]] = []  # (confidence, seed, z, image, scores)
    met_all: list[np.ndarray] = []
    sampled = 0
    while sampled < body.budget and len(found) < body.n:
        seeds = list(range(body.seed + sampled, body.seed + min(body.budget, sampled + SPECIFY_BATCH)))
        try:
            z, images, scores = await asyncio.to_thread(_render_and_score, backend, classifier, resolved, seeds)
        except Exception as e:  # noqa: BLE001 - model-server failures become the studio's JSON errors
            from serving.client import ServingClientError
            from serving.studio.backend import model_server_error

            if isinstance(e, ServingClientError):
                raise model_server_error(e, backend.config.server, target) from None
            raise
        met = satisfaction(scores, columns, values, classifier.threshold)
        met_all.append(met)
        p = scores[:, columns]
        confidence = np.prod(np.where(np.asarray(values)[None, :], p, 1.0 - p), axis=1)
        for i in np.flatnonzero(met.all(1)):
            found.append((float(confidence[i]), seeds[i], z[i], images[i], scores[i]))
        sampled += len(seeds)
    met = np.concatenate(met_all)
    if not found:
        raise _unsatisfiable(wanted, met, sampled)
    found.sort(key=lambda f: -f[0])
    best = found[:body.n]
    pngs = await asyncio.to_thread(_encode_images, np.stack([f[3] for f in best]))
    from serving.studio.backend import png_data_url

    faces = [{"seed": seed, "z": [float(v) for v in z], "png": png_data_url(png), "confidence": round(conf, 4),
              "scores": {name: round(float(s), 4) for name, s in zip(classifier.names, scores)}}
             for (conf, seed, z, _, scores), png in zip(best, pngs)]
    reliability = {n: (classifier.info.get("classifier", {}).get(n) or {}).get("balanced_accuracy") for n in wanted}
    return envelope(resolved, constraints=wanted, faces=faces, complete=len(best) == body.n, satisfaction={
        "sampled": sampled, "satisfied": int(met.all(1).sum()), "rate": round(float(met.all(1).mean()), 4),
        "per_constraint": {n: round(float(r), 4) for n, r in zip(wanted, met.mean(0))},
        "threshold": classifier.threshold, "seeds": [body.seed, body.seed + sampled - 1]},
        classifier={"balanced_accuracy": reliability,
                    "note": "scores come from the attribute classifier exported with the model; its held-out "
                            "balanced accuracy says how far to trust each constraint"})


@router.post("/directions/conditional", openapi_extra=body_schema(ConditionalBody))
async def conditional(request: Request, body: Annotated[ConditionalBody, Depends(json_body(ConditionalBody))],
                      backend: Backend) -> dict[str, Any]:
    from dcgan.directions import KIND_SUFFIX, conditional_direction

    resolved = await backend.resolve(target_of(backend, body))
    found = backend.directions(resolved)
    if not found["available"]:
        raise StudioError(404, "no_directions", found["note"] or "no directions for this version")
    attributes = found["document"]["attributes"]
    normals = {n: e["normal"] for n, e in attributes.items() if isinstance(e, dict) and "normal" in e}
    if not normals:
        raise StudioError(400, "no_boundary_normals", f"the directions of version {resolved.version} "
                          f"({found['document'].get('format')}) hold no boundary normals: recompute them with "
                          "`dcgan directions`", "attribute")
    known = ", ".join(normals)
    if body.attribute not in normals:
        raise StudioError(400, "unknown_attribute", f"attribute {body.attribute!r} is not known; known: {known}",
                          "attribute")
    unknown = [n for n in body.fixed if n not in normals]
    if unknown:
        raise StudioError(400, "unknown_attribute", f"fixed names unknown attribute(s) "
                          f"{', '.join(repr(n) for n in unknown)}; known: {known}", "fixed")
    if body.attribute in body.fixed:
        raise StudioError(400, "contradictory_constraints", f"{body.attribute!r} cannot be both moved and kept "
                          "fixed", "fixed")
    fixed = list(dict.fromkeys(body.fixed))
    try:
        vector, cosine = conditional_direction(np.asarray(normals[body.attribute]), [normals[n] for n in fixed])
    except ValueError as e:
        raise StudioError(400, "degenerate_direction", f"{body.attribute} with {', '.join(fixed)} fixed: {e}",
                          "fixed") from None
    name = body.attribute + KIND_SUFFIX["conditional"] + (f" | {', '.join(fixed)} fixed" if fixed else "")
    return envelope(resolved, name=name, attribute=body.attribute, fixed=fixed, vector=[float(v) for v in vector],
                    cosine_to_boundary=round(cosine, 4))

