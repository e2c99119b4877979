"""`POST /api/specify` and `POST /api/directions/conditional` against a real model server serving the tiny generator,
with a real exported attribute classifier whose answer the test can recompute from the pixels: "Bright" (mean pixel
value above the tiny faces' median), "Warm" (red minus blue above its median), "Never" (always no). The classifier
is a hand-weighted Keras model exported with dcgan.directions.export_attribute_classifier, so every face the API
returns can be checked against its own PNG, independently of the classifier. Bad input: unknown attributes,
contradictions (the same attribute twice; a pair never seen together in the labelled data), unsatisfiable.
An exported judge of the same kind with other thresholds grades the stored directions
(dcgan.directions.measure_quality): its quality table is recomputed here from the pixels, and each slider's badge in
/api/directions is read from it."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
from serving_helpers import MODEL, add_version, running_server, write_config
from test_studio_api import Z_DIM, error, ok, pixels, studio_client, visible_tiny_model

from dcgan import directions as d
from dcgan import edit_quality as q
from dcgan.latent import z_from_seeds

NAMES = ["Bright", "Warm", "Never"]
SHARPNESS = 60.0  # scores far from 0.5 except right at the median


# -- the hand-built classifier -----------------------------------------------------------------------------------------
def features(images_unit: np.ndarray) -> np.ndarray:
    """[N, 2]: mean pixel value, mean red − mean blue (images in [-1, 1])."""
    m = images_unit.mean(axis=(1, 2))
    return np.stack([m.mean(1), m[:, 0] - m[:, 2]], 1)


JUDGE_OFFSETS = np.array([0.004, -0.004])  # the judge's thresholds: the classifier's medians moved a little
SUGGESTED = {"Bright": 1.0, "Warm": 2.0, "Never": 2.0}  # the sliders' suggested steps (Bright's: another pass)


def build_scorer(medians: np.ndarray):
    """Keras: image → channel means → sigmoid(SHARPNESS · (feature − median)) for Bright, Warm; Never = sigmoid(−50)."""
    import keras
    from keras import layers

    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.GlobalAveragePooling2D()(inputs)
    dense = layers.Dense(3, activation="sigmoid", name="attributes")
    out = dense(x)
    kernel = np.zeros((3, 3), np.float32)
    kernel[:, 0] = SHARPNESS / 3.0               # Bright: mean of r, g, b
    kernel[0, 1], kernel[2, 1] = SHARPNESS, -SHARPNESS  # Warm: r − b
    bias = np.array([-SHARPNESS * medians[0], -SHARPNESS * medians[1], -50.0], np.float32)
    dense.set_weights([kernel, bias])
    return keras.Model(inputs, out)


def expected_flags(png_pixels: np.ndarray, medians: np.ndarray) -> dict[str, bool]:
    f = features(png_pixels[None].astype(np.float32) / 127.5 - 1.0)[0]
    return {"Bright": bool(f[0] > medians[0]), "Warm": bool(f[1] > medians[1]), "Never": False}


def directions_v2(rng: np.random.Generator) -> dict:
    """A directions.json /2 with boundary normals for the three attributes (random unit vectors) and their
    mean-difference/boundary directions plus one SeFa direction."""
    attributes, directions = {}, {}
    for name in NAMES:
        normal = rng.standard_normal(Z_DIM)
        normal /= np.linalg.norm(normal)
        attributes[name] = {"definition": f"test: {name}", "normal": normal.tolist(), "reliable": name != "Never",
                            "classifier": {"n": 40, "accuracy": 0.9, "balanced_accuracy": 0.9},
                            "positive_rate": {"real": 0.5, "generated": 0.5}}
        effect = {"amounts": [0.0, 2.0], "mean_score": [0.5, 0.8], "delta": [0.0, 0.3], "positive_rate": [0.5, 0.9],
                  "side_effects_at": 2.0, "side_effects": {}, "prevalence": {n: [0.5, 0.5] for n in NAMES}}
        attributes[name]["judge"] = {"n": 40, "balanced_accuracy": 0.95 if name != "Never" else 0.5}
        directions[name] = {"kind": "mean_difference", "attribute": name, "vector": normal.tolist(), "effect": effect,
                            "suggested_amount": SUGGESTED[name]}
        directions[name + " · boundary"] = {"kind": "boundary", "attribute": name, "vector": normal.tolist(),
                                            "effect": effect, "suggested_amount": SUGGESTED[name]}
    sefa = rng.standard_normal(Z_DIM)
    directions["SeFa 1"] = {"kind": "sefa", "attribute": None, "vector": (sefa / np.linalg.norm(sefa)).tolist(),
                            "effect": {"amounts": [0.0, 2.0], "side_effects_at": 2.0, "side_effects": {"Warm": 0.2},
                                       "prevalence": {n: [0.5, 0.5] for n in NAMES}}}
    return {"format": d.FORMAT, "z_dim": Z_DIM, "amounts": [0.0, 2.0], "attributes": attributes,
            "directions": directions, "method": {}, "classifier": {}, "data": {},
            "config": {"quality_amount": 2.0, "control_directions": 4, "success_goal": 0.85, "churn_ratio_goal": 1.5}}


def specify_model(root, saved_model: str) -> SimpleNamespace:
    """<root>/models/dcgan/1 = the tiny generator + directions.json /2 + the exported test classifier. The medians are
    measured on the tiny generator's faces of seeds 10,000–10,255 (not the seeds the tests draw from)."""
    from dcgan.export import LoadedGenerator
    from dcgan.images import to_uint8

    base = str(root / "models" / MODEL)
    version = add_version(saved_model, base, 1)
    images = to_uint8(LoadedGenerator(version).images(z_from_seeds(list(range(10_000, 10_256)), Z_DIM)))
    medians = np.median(features(images.astype(np.float32) / 127.5 - 1.0), 0)
    d.write_directions(version, directions_v2(np.random.default_rng(0)))
    # Labelled "training data" where Bright and Warm never occur together (120 expected if independent).
    counts = np.zeros((3, 3, 2, 2), np.int64)
    for i in range(3):
        for j in range(3):
            counts[i, j] = [[100, 100], [100, 100]] if i != j else [[200, 0], [0, 200]]
    counts[0, 1] = [[140, 130], [130, 0]]
    counts[1, 0] = counts[0, 1].T
    info = {"threshold": 0.5, "image_shape": [32, 32, 3], "reliable": ["Bright", "Warm"],
            "classifier": {n: {"balanced_accuracy": 0.9} for n in NAMES},
            "cooccurrence": {"n": [[200, 200]] * 3, "counts": counts.tolist()}}
    d.export_attribute_classifier(build_scorer(medians), NAMES, d.default_classifier_dir(version), info)
    d.export_attribute_classifier(build_scorer(medians + JUDGE_OFFSETS), NAMES, d.default_judge_dir(version),
                                  {**info, "role": "judge"})
    # The stored quality table, as the directions step stores it: graded by the judge on fresh faces.
    doc = d.read_directions(os.path.join(version, d.DIRECTIONS_FILE))
    quality = d.measure_quality(version, samples=64, seed=500)
    for key in ("base_verdicts", "names", "base_prevalence", "samples", "seed"):
        quality.pop(key)
    d.write_directions(version, {**doc, "quality": quality})
    config = write_config(str(root / "models.config"), [{"name": MODEL, "base_path": base, "policy": "all"}])
    return SimpleNamespace(base=base, config=config, medians=medians, version_dir=version, quality=quality)


# -- fixtures ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("studio_specify")
    model = specify_model(root, visible_tiny_model(tmp_path_factory, tiny_run))
    with running_server(model_config_file=model.config) as server:
        yield SimpleNamespace(server=server, **model.__dict__)


@pytest.fixture(scope="module")
def api(served):
    with studio_client(server=served.server.grpc_target, model_base_path=served.base) as client:
        yield client


# -- specify -----------------------------------------------------------------------------------------------------------
def test_specify_returns_faces_that_meet_every_constraint_judged_from_their_own_pixels(api, served):
    answer = ok(api.post("/api/specify", json={"constraints": {"Bright": True, "Warm": False}, "n": 6, "seed": 3}))
    assert answer["version"] == 1 and answer["constraints"] == {"Bright": True, "Warm": False}
    assert len(answer["faces"]) == 6 and answer["complete"] is True
    for face in answer["faces"]:
        picture = pixels(face["png"])
        assert picture.shape == (32, 32, 3)
        flags = expected_flags(picture, served.medians)
        assert flags["Bright"] and not flags["Warm"], (face["seed"], flags, face["scores"])
        assert face["scores"]["Bright"] >= 0.5 and face["scores"]["Warm"] < 0.5
        np.testing.assert_allclose(face["z"], z_from_seeds([face["seed"]], Z_DIM)[0], atol=1e-6)
    confidences = [f["confidence"] for f in answer["faces"]]
    assert confidences == sorted(confidences, reverse=True), "best first"
    s = answer["satisfaction"]
    assert s["sampled"] % 256 == 0 or s["sampled"] == 2048
    assert s["seeds"] == [3, 3 + s["sampled"] - 1] and 6 <= s["satisfied"] <= s["sampled"]
    assert s["rate"] == pytest.approx(s["satisfied"] / s["sampled"], abs=1e-4)
    assert 0.3 < s["per_constraint"]["Bright"] < 0.7 and 0.3 < s["per_constraint"]["Warm"] < 0.7, s  # medians
    assert answer["classifier"]["balanced_accuracy"] == {"Bright": 0.9, "Warm": 0.9}


def test_the_faces_of_a_specification_are_the_generators_faces_of_their_seeds(api):
    answer = ok(api.post("/api/specify", json={"constraints": {"Warm": True}, "n": 3}))
    seeds = [f["seed"] for f in answer["faces"]]
    again = ok(api.post("/api/generate", json={"seed": seeds[0], "n": 1}))["faces"][0]
    np.testing.assert_array_equal(pixels(again["png"]), pixels(answer["faces"][0]["png"]))


def test_a_small_budget_may_return_fewer_faces_and_says_so(api):
    answer = ok(api.post("/api/specify", json={"constraints": {"Bright": True, "Warm": False}, "n": 32,
                                               "budget": 40}))
    assert answer["satisfaction"]["sampled"] == 40
    assert 1 <= len(answer["faces"]) < 32 and answer["complete"] is False


def test_unknown_attributes_are_named_with_the_known_ones(api):
    e = error(api.post("/api/specify", json={"constraints": {"Eyeglasses": True, "Bright": True}}), 400)
    assert e["code"] == "unknown_attribute" and e["field"] == "constraints"
    assert "'Eyeglasses'" in e["message"] and "known: Bright, Warm, Never" in e["message"]


def test_contradictory_constraints_are_refused(api):
    raw = '{"constraints": {"Bright": true, "Warm": false, "Bright": false}, "n": 2}'
    e = error(api.post("/api/specify", content=raw, headers={"Content-Type": "application/json"}), 400)
    assert e["code"] == "contradictory_constraints" and "give 'Bright' twice, as true and false" in e["message"]
    e = error(api.post("/api/specify", json={"constraints": {"Bright": True, "Warm": True}}), 400)
    assert e["code"] == "contradictory_constraints"
    assert "Bright=true and Warm=true contradict each other" in e["message"] and "400 labelled" in e["message"]


def test_unsatisfiable_constraints_name_the_one_that_could_not_be_met(api):
    r = api.post("/api/specify", json={"constraints": {"Bright": True, "Never": True}, "n": 2, "budget": 512})
    e = error(r, 400)
    assert e["code"] == "unsatisfiable" and e["field"] == "constraints"
    assert "no face among 512 sampled met every constraint: Never=true could not be met" in e["message"]
    detail = r.json()["error"]["details"][0]
    assert detail["constraint"] == "Never" and detail["rate_alone"] == 0.0 and detail["sampled"] == 512
    assert 0.3 < detail["best_rate_without_it"] < 0.7, "without Never, about half the faces are bright"
    assert f"{detail['best_rate_without_it']:.1%} of them met the rest (the best rate seen)" in e["message"]


@pytest.mark.parametrize("body, field, message", [
    ({"constraints": {}}, "constraints", "at least one attribute"),
    ({"constraints": {"Bright": "yes"}}, "constraints", "constraints.Bright must be true or false"),
    ({"constraints": {"Bright": True}, "n": 0}, "n", "n must be between 1 and 32"),
    ({"constraints": {"Bright": True}, "n": 4, "budget": 2}, "budget", "budget must be between n=4 and 8192"),
    ({"constraints": {"Bright": True}, "colour": 1}, "colour", "unknown field 'colour'"),
    ({"n": 2}, "constraints", "constraints is required"),
])
def test_bad_specify_bodies_are_clear_400s(api, body, field, message):
    e = error(api.post("/api/specify", json=body), 400)
    assert e.get("field") == field and message in e["message"], e


def test_a_version_without_a_classifier_answers_404_with_the_reason(tmp_path, served):
    import shutil

    from test_studio_api import fake_directions

    base = str(tmp_path / "models" / MODEL)
    version = add_version(served.version_dir, base, 1)
    shutil.rmtree(d.default_classifier_dir(version))
    with open(os.path.join(version, d.DIRECTIONS_FILE), "w") as f:
        json.dump(fake_directions(("Smiling",), seed=1), f)  # a /1 file: no normals either
    with studio_client(server=served.server.grpc_target, model_base_path=base) as client:
        e = error(client.post("/api/specify", json={"constraints": {"Smiling": True}}), 404)
        assert e["code"] == "no_attribute_classifier" and "attribute_classifier does not exist" in e["message"]
        e = error(client.post("/api/directions/conditional", json={"attribute": "Smiling"}), 400)
        assert e["code"] == "no_boundary_normals" and "dcgan-directions/1" in e["message"]


# -- conditional directions --------------------------------------------------------------------------------------------
def test_conditional_direction_is_orthogonal_to_the_fixed_normals(api):
    answer = ok(api.post("/api/directions/conditional", json={"attribute": "Bright", "fixed": ["Warm", "Never"]}))
    assert answer["name"] == "Bright · conditional | Warm, Never fixed" and answer["fixed"] == ["Warm", "Never"]
    v = np.array(answer["vector"])
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    normals = {a: np.array(e["normal"]) for a, e in directions_v2(np.random.default_rng(0))["attributes"].items()}
    assert abs(v @ normals["Warm"]) < 1e-5 and abs(v @ normals["Never"]) < 1e-5
    assert v @ normals["Bright"] == pytest.approx(answer["cosine_to_boundary"], abs=1e-4)
    # The vector moves a face like any custom direction.
    moved = ok(api.post("/api/move", json={"z": z_from_seeds([1], Z_DIM)[0].tolist(),
                                           "moves": [{"vector": answer["vector"], "amount": 2.0}]}))
    assert moved["moves"] == [{"direction": "custom", "amount": 2.0}]


def test_directions_are_listed_with_their_kind_and_attribute_facts(api):
    listed = ok(api.get("/api/directions"))
    assert listed["format"] == d.FORMAT
    kinds = {x["name"]: x["kind"] for x in listed["directions"]}
    assert kinds["Bright"] == "mean_difference" and kinds["Bright · boundary"] == "boundary"
    assert kinds["SeFa 1"] == "sefa"
    bright = next(x for x in listed["directions"] if x["name"] == "Bright · boundary")
    assert bright["attribute"] == "Bright" and bright["classifier"]["balanced_accuracy"] == 0.9
    assert "vector" not in bright and "normal" not in bright
    assert {a["name"]: a["reliable"] for a in listed["attributes"]} == {"Bright": True, "Warm": True, "Never": False}
    moved = ok(api.post("/api/move", json={"z": z_from_seeds([1], Z_DIM)[0].tolist(),
                                           "moves": [{"direction": "SeFa 1", "amount": 1.5}]}))
    assert moved["moves"] == [{"direction": "SeFa 1", "amount": 1.5}]


# -- the judge's quality table and the sliders' badges ---------------------------------------------------------------
def verdicts_from_pixels(version_dir: str, z: np.ndarray, medians: np.ndarray) -> np.ndarray:
    """bool [N, 2]: Bright, Warm of the generator's faces of z, from their pixels (not from any classifier)."""
    from dcgan.export import LoadedGenerator
    from dcgan.images import to_uint8

    pictures = to_uint8(LoadedGenerator(version_dir).images(z.astype(np.float32)))
    return features(pictures.astype(np.float32) / 127.5 - 1.0) >= medians


def test_the_judges_quality_table_is_what_the_pixels_say(served):
    """measure_quality with the real exported generator, classifier and judge: success by the judge and by the
    classifier, their agreement, churn (the only other judged attribute is Warm), the random control's churn and
    the ratio, and the suggested step's figures, each recomputed from the faces' pixels with the two sets of
    thresholds. One face lying right at a threshold may go either way (float32 sums): the tolerance is one face."""
    table, one_face = served.quality, 1 / 64 + 1e-9
    doc = d.read_directions(os.path.join(served.version_dir, d.DIRECTIONS_FILE))
    assert table["graded_by"] == "judge" and table["judged"] == ["Bright", "Warm"], "Never: judge at 0.5"
    judge, classifier = served.medians + JUDGE_OFFSETS, served.medians
    z = np.random.default_rng(500).standard_normal((64, Z_DIM))
    v = np.asarray(doc["directions"]["Bright"]["vector"])
    base = verdicts_from_pixels(served.version_dir, z, judge)
    for step, cell in ((2.0, table["rows"]["Bright"]["mean_difference"]),
                       (1.0, table["rows"]["Bright"]["mean_difference"]["suggested"])):
        moved = verdicts_from_pixels(served.version_dir, z + step * v, judge)
        moved_fit = verdicts_from_pixels(served.version_dir, z + step * v, classifier)
        assert cell["success"] == pytest.approx(moved[:, 0].mean(), abs=one_face)
        assert cell["fit"]["success"] == pytest.approx(moved_fit[:, 0].mean(), abs=one_face)
        assert cell["agreement"] == pytest.approx(np.mean(moved[:, 0] == moved_fit[:, 0]), abs=one_face)
        assert cell["churn"] == pytest.approx(np.mean(moved[:, 1] != base[:, 1]), abs=one_face)
        control = q.random_unit_directions(4, Z_DIM, seed=501)  # measure_quality's control: seed + 1
        churn = np.mean([np.mean(verdicts_from_pixels(served.version_dir, z + step * c, judge)[:, 1] != base[:, 1])
                         for c in control])
        stored = table["control"] if step == 2.0 else table["control_at"]["1"]
        assert stored["churn"]["Bright"] == pytest.approx(churn, abs=one_face)
        assert cell["churn_ratio"] == pytest.approx(cell["churn"] / stored["churn"]["Bright"], abs=1e-3)
    assert table["rows"]["Bright"]["mean_difference"]["suggested"]["amount"] == 1.0
    assert table["control"]["directions"] == 4 and set(table["control_at"]) == {"1", "2"}


def test_each_slider_carries_its_quality_badge_read_from_the_judges_table(api, served):
    listed = {x["name"]: x for x in ok(api.get("/api/directions"))["directions"]}
    table = served.quality
    for name, attribute, kind in (("Bright", "Bright", "mean_difference"), ("Warm · boundary", "Warm", "boundary")):
        cell = table["rows"][attribute][kind]
        at = cell["suggested"]
        badge = listed[name]["badge"]
        assert listed[name]["suggested_amount"] == at["amount"] == SUGGESTED[attribute]
        assert badge["graded_by"] == "judge" and badge["amount"] == at["amount"]
        assert badge["success"] == at["success"] and badge["churn_ratio"] == at["churn_ratio"]
        assert badge["fit_success"] == at["fit"]["success"] and badge["agreement"] == at["agreement"]
        assert badge["goals"] == {"success": 0.85, "churn_ratio": 1.5}
        assert badge["meets_goals"] == (at["success"] >= 0.85 and at["churn_ratio"] <= 1.5)
    assert listed["Never"]["badge"] is None, "an attribute the judge cannot judge has no badge"
    assert listed["SeFa 1"]["badge"] is None


@pytest.mark.parametrize("body, code, message", [
    ({"attribute": "Smiling"}, "unknown_attribute", "attribute 'Smiling' is not known; known: Bright, Warm, Never"),
    ({"attribute": "Bright", "fixed": ["Hat"]}, "unknown_attribute", "fixed names unknown attribute(s) 'Hat'"),
    ({"attribute": "Bright", "fixed": ["Bright"]}, "contradictory_constraints", "cannot be both moved and kept"),
])
def test_bad_conditional_requests_are_clear_400s(api, body, code, message):
    e = error(api.post("/api/directions/conditional", json=body), 400)
    assert e["code"] == code and message in e["message"], e
