"""Attribute directions (dcgan.directions): binary attributes from the example labels, the direction fit and the
effect measurement on planted data, end to end on labelled avatar TFRecords through `dcgan directions`, the
directions.json file, and the Trainer hook that computes them after the export."""

from __future__ import annotations

import json
import logging
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from dcgan import directions as d

AVATARS = 200  # 160 train + 40 eval, rendered at 32×32 (~3 s)


# -- fixtures -------------------------------------------------------------------------------------------------------
def write_examples(folder: str, items, split: str) -> str:
    """TFRecords in the example schema (dcgan.schema) under folder/Split-<split>/."""
    import tensorflow as tf

    from dcgan import schema
    from dcgan.images import encode_png

    out = os.path.join(folder, f"Split-{split}")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"data-00000-of-00001{schema.FILE_SUFFIX}")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for i, (image, labels) in enumerate(items):
            example = schema.make_example(encode_png(image), image.shape[0], image.shape[1], f"{split}-{i}",
                                          "test", labels)
            writer.write(example.SerializeToString())
    return path


@pytest.fixture(scope="module")
def avatar_examples(tmp_path_factory) -> str:
    """An Examples directory of labelled avatars: Split-train (160) and Split-eval (40)."""
    from dcgan.avatars import iter_avatars

    folder = str(tmp_path_factory.mktemp("avatar_examples"))
    items = [(image, labels) for _, image, labels in iter_avatars(AVATARS, seed=0, size=32)]
    write_examples(folder, items[:160], "train")
    write_examples(folder, items[160:], "eval")
    return folder


@pytest.fixture
def saved_model(tmp_path, tiny_saved_model) -> str:
    """A private copy of the tiny generator (directions are written into it)."""
    return shutil.copytree(tiny_saved_model, str(tmp_path / "generator"))


# -- attributes from labels -------------------------------------------------------------------------------------------
def test_avatar_labels_give_celeba_style_flags_plus_derived_attributes():
    from dcgan.avatars import avatar_attributes

    labels = [avatar_attributes(0, i) for i in range(60)]
    attributes = d.derive_attributes(labels)
    names = [a.name for a in attributes]
    assert names == ["Bald", "Beard", "Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses", "Facial_Hair",
                     "Gray_Hair", "Mustache", "Smiling", "Wearing_Hat"]
    y = d.label_matrix(labels, attributes)
    for row, a in zip(y, labels):
        assert row[names.index("Eyeglasses")] == (a["accessory"] != "none")
        assert row[names.index("Beard")] == (a["No_Beard"] == "0")  # No_Beard reads better inverted
        assert row[names.index("Facial_Hair")] == (a["facial_hair"] != "none")
        assert row[names.index("Smiling")] == (a["Smiling"] == "1")


def test_celeba_plus_minus_one_flags_work_the_same_and_text_labels_alone_give_nothing():
    labels = [{"Male": "1", "Smiling": "-1", "hair": "long"}, {"Male": "-1", "Smiling": "1"}, {"Male": "0"}]
    attributes = d.derive_attributes(labels)
    assert [a.name for a in attributes] == ["Male", "Smiling"]
    np.testing.assert_array_equal(d.label_matrix(labels, attributes), [[1, 0], [0, 1], [0, -1]])  # -1: unknown
    assert d.derive_attributes([{"hair_color": "black"}, {"hair_color": "red"}]) == []
    assert d.derive_attributes([{}, {}]) == []


# -- the fit and the effect, on planted data --------------------------------------------------------------------------
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_fit_recovers_a_planted_direction_and_the_effect_grows_along_it():
    rng = np.random.default_rng(0)
    dim = 16
    u = rng.standard_normal(dim)
    u /= np.linalg.norm(u)
    v = np.zeros(dim)
    v[np.argmin(np.abs(u))] = 1.0  # a second attribute, nearly independent of the first

    def score(z):  # "generator" = identity, "classifier" = two logistic attributes
        return np.stack([_sigmoid(3 * z @ u), _sigmoid(3 * z @ v)], 1)

    z = rng.standard_normal((4000, dim)).astype(np.float32)
    vector, info = d.fit_direction(z, score(z)[:, 0])
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert vector @ u > 0.95, f"cosine to the planted direction {vector @ u:.3f}"
    assert info["split"] == "threshold" and info["with"] + info["without"] == 4000

    fresh = rng.standard_normal((500, dim)).astype(np.float32)
    effect = d.measure_effect(lambda x: x, score, fresh, np.stack([vector, v]), d.DEFAULT_AMOUNTS,
                              ["planted", "other"])
    deltas = effect[0]["delta"]
    assert deltas[3] == 0.0 and all(a < b for a, b in zip(deltas, deltas[1:])), deltas
    assert deltas[-1] > 0.3 and deltas[0] < -0.3
    assert effect[0]["positive_rate"][-1] > 0.9 and effect[0]["positive_rate"][0] < 0.1
    assert effect[0]["side_effects_at"] == 3.0 and abs(effect[0]["side_effects"]["other"]) < 0.15


def test_fit_falls_back_to_deciles_when_one_side_is_nearly_empty():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((1000, 8)).astype(np.float32)
    scores = _sigmoid(z[:, 0] - 6)  # almost never above 0.5
    vector, info = d.fit_direction(z, scores, min_group=10)
    assert info["split"] == "deciles" and info["with"] == info["without"] == 100
    assert vector[0] > 0.9


def test_heldout_metrics_count_balanced_accuracy():
    y = np.array([1, 1, 0, 0, 0, 0, -1], np.float32)
    scores = np.array([0.9, 0.2, 0.1, 0.1, 0.1, 0.6, 0.9])
    m = d.heldout_metrics(y, scores, 0.5)
    assert m["n"] == 6 and m["positives"] == 2
    assert m["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 0.75) / 2, abs=1e-4)


# -- end to end ------------------------------------------------------------------------------------------------------
def test_dcgan_directions_writes_directions_json_beside_the_savedmodel(saved_model, avatar_examples, capsys):
    from dcgan.cli import main

    assert main(["directions", saved_model, "--data", avatar_examples, "--samples", "400", "--eval-samples", "48",
                 "--epochs", "4"]) == 0
    out = capsys.readouterr().out
    assert "acc" in out and "Eyeglasses" in out and "-> " + os.path.join(saved_model, d.DIRECTIONS_FILE) in out
    doc = d.read_directions(os.path.join(saved_model, d.DIRECTIONS_FILE), z_dim=100)
    assert doc["format"] == d.FORMAT and doc["z_dim"] == 100 and doc["model"]["image_shape"] == [32, 32, 3]
    assert doc["data"]["train_examples"] == 160 and doc["data"]["heldout_examples"] == 40
    assert doc["data"]["heldout"].startswith("the eval split")
    assert doc["samples"]["fit_seed"] != doc["samples"]["eval_seed"], "effects must be measured on fresh samples"
    assert doc["amounts"] == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    assert {"Eyeglasses", "Smiling", "Facial_Hair"} <= set(doc["attributes"])
    assert "Bald" in doc["skipped"] and "too few" in doc["skipped"]["Bald"]  # 2 % of 160 faces: not enough
    for name, entry in doc["attributes"].items():
        assert np.linalg.norm(entry["normal"]) == pytest.approx(1.0, abs=1e-5), name
        assert entry["classifier"]["n"] == 40 and 0 <= entry["classifier"]["accuracy"] <= 1
        assert 0 < entry["positive_rate"]["real"] < 1 and 0 <= entry["positive_rate"]["generated"] <= 1
        assert doc["directions"][name]["kind"] == "mean_difference"
        assert doc["directions"][name + " · boundary"]["kind"] == "boundary"
        np.testing.assert_allclose(doc["directions"][name + " · boundary"]["vector"], entry["normal"], atol=1e-6)
    kinds = {}
    for name, entry in doc["directions"].items():
        kinds[entry["kind"]] = kinds.get(entry["kind"], 0) + 1
        assert np.linalg.norm(entry["vector"]) == pytest.approx(1.0, abs=1e-5), name
        assert entry["effect"]["amounts"] == doc["amounts"] and set(entry["effect"]["prevalence"]) == set(
            doc["attributes"])
        if entry["kind"] != "sefa":
            assert entry["effect"]["delta"][3] == 0.0 and len(entry["effect"]["mean_score"]) == 7
        if entry["kind"] == "conditional":  # orthogonal to every normal it fixes
            assert entry["attribute"] not in entry["fixed"]
            for other in entry["fixed"]:
                assert abs(np.dot(entry["vector"], doc["attributes"][other]["normal"])) < 1e-4
    n = len(doc["attributes"])
    assert kinds["mean_difference"] == kinds["boundary"] == n and kinds["sefa"] == 5
    assert doc["sefa"]["components"] == 5 and 0 < sum(doc["sefa"]["explained"]) <= 1
    assert doc["quality"]["amount"] == 2.0 and set(doc["quality"]["rows"]) <= set(doc["attributes"])
    assert "success / leakage after +2" in out
    # The exported classifier scores like the one that labelled the samples, without training code.
    classifier = d.AttributeClassifier(os.path.join(saved_model, d.CLASSIFIER_DIR))
    assert classifier.names == list(doc["attributes"]) and classifier.threshold == 0.5
    scores = classifier.scores(np.zeros((3, 32, 32, 3), np.float32))
    assert scores.shape == (3, n) and np.all((scores >= 0) & (scores <= 1))
    counts = np.array(classifier.info["cooccurrence"]["counts"])
    assert counts.shape == (n, n, 2, 2) and counts[0, 0].sum() == 160  # every training avatar has every flag
    # The classifier learned what glasses look like (held-out real avatars it never trained on).
    assert doc["attributes"]["Eyeglasses"]["classifier"]["balanced_accuracy"] > 0.75


def test_dcgan_directions_explains_data_without_labels(saved_model, tmp_path, capsys, image_folder):
    from dcgan.cli import main

    plain = str(tmp_path / "plain")
    write_examples(plain, [(np.full((32, 32, 3), i * 20, np.uint8), {}) for i in range(4)], "train")
    assert main(["directions", saved_model, "--data", plain]) == 2
    assert "no attribute directions: the 4 examples of 1 file(s) carry no attribute labels" in capsys.readouterr().err
    assert main(["directions", saved_model, "--data", image_folder]) == 2
    assert "holds image files, not TFRecords" in capsys.readouterr().err
    assert main(["directions", str(tmp_path), "--data", plain]) == 2
    assert "is not a SavedModel directory" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(saved_model, d.DIRECTIONS_FILE))


def test_read_directions_rejects_broken_files(tmp_path):
    path = str(tmp_path / "d.json")
    v1, v2 = d.FORMAT_V1, d.FORMAT
    cases = [({"format": "other"}, "is not a dcgan-directions/2 \\(or dcgan-directions/1\\) file"),
             ({"format": v1, "z_dim": 3, "attributes": {"A": {"vector": [1, 2]}}}, "list of 3 numbers"),
             ({"format": v1, "z_dim": 2, "attributes": {"A": {"vector": [1, "x"]}}}, "list of 2 numbers"),
             ({"format": v1, "z_dim": 0, "attributes": {}}, "z_dim must be a positive integer"),
             ({"format": v2, "z_dim": 2, "attributes": {}}, "'directions' must be an object"),
             ({"format": v2, "z_dim": 2, "attributes": {}, "directions": {"x": {"kind": "pca", "vector": [1, 0]}}},
              "kind 'pca'; known: mean_difference, boundary, conditional, sefa"),
             ({"format": v2, "z_dim": 2, "attributes": {}, "directions": {
                 "x": {"kind": "boundary", "attribute": "A", "vector": [1, 0]}}}, "names attribute 'A'"),
             ({"format": v2, "z_dim": 2, "attributes": {"A": {"normal": [1]}}, "directions": {}},
              "the boundary normal of 'A' must be a list of 2 numbers")]
    for doc, message in cases:
        with open(path, "w") as f:
            json.dump(doc, f)
        with pytest.raises(d.DirectionsFileError, match=message):
            d.read_directions(path)
    with open(path, "w") as f:
        f.write('{"format": "dcgan-directions/1", "z_dim": 1, "attributes": {"A": {"vector": [NaN]}}}')
    with pytest.raises(d.DirectionsFileError, match="not finite"):
        d.read_directions(path)
    with pytest.raises(d.DirectionsFileError, match="takes 5"):
        with open(path, "w") as f:
            json.dump({"format": d.FORMAT, "z_dim": 1, "attributes": {}, "directions": {}}, f)
        d.read_directions(path, z_dim=5)


def test_a_version_1_file_reads_as_mean_difference_directions(tmp_path):
    path = str(tmp_path / "d.json")
    with open(path, "w") as f:
        json.dump({"format": d.FORMAT_V1, "z_dim": 2, "attributes": {"Smiling": {"vector": [0.6, 0.8]}}}, f)
    doc = d.read_directions(path, z_dim=2)
    assert doc["format"] == d.FORMAT_V1
    assert doc["directions"] == {"Smiling": {"kind": "mean_difference", "attribute": "Smiling",
                                             "vector": [0.6, 0.8]}}


def test_directions_config_is_validated():
    with pytest.raises(ValueError, match="unknown option"):
        d.DirectionsConfig.from_dict({"sample": 10})
    with pytest.raises(ValueError, match="samples=5 must be at least 2 x min_group"):
        d.DirectionsConfig(samples=5).validate()
    assert d.DirectionsConfig.from_dict({"amounts": [-1, 1]}).amounts == (-1.0, 1.0)


# -- the Trainer hook -------------------------------------------------------------------------------------------------
def _fn_args(tmp_path, examples: str, custom: dict) -> SimpleNamespace:
    return SimpleNamespace(custom_config=custom, train_files=[os.path.join(examples, "Split-train", "*")],
                           eval_files=[os.path.join(examples, "Split-eval", "*")], train_steps=None,
                           model_run_dir=str(tmp_path / "model_run"), serving_model_dir=str(tmp_path / "serving"))


def test_trainer_computes_directions_right_after_the_export(tmp_path, avatar_examples):
    from components.trainer_module import SUMMARY_FILE, run_fn
    from dcgan.config import ModelConfig, TrainConfig

    train = TrainConfig(data="<from ingest>", model=ModelConfig(size=32, ngf=8, ndf=8), steps=2, batch_size=16,
                        log_every=1, sample_every=2, checkpoint_every=2, num_samples=16)
    fn_args = _fn_args(tmp_path, avatar_examples, {"train_config": train.to_dict(), "directions": {
        "samples": 200, "eval_samples": 16, "epochs": 1, "min_steps": 20}})
    run_fn(fn_args)
    path = os.path.join(fn_args.serving_model_dir, d.DIRECTIONS_FILE)
    doc = d.read_directions(path, z_dim=100)
    assert doc["config"]["samples"] == 200 and doc["data"]["heldout_examples"] == 40
    with open(os.path.join(fn_args.serving_model_dir, "assets.extra", SUMMARY_FILE)) as f:
        assert json.load(f)["directions"] == path


def test_trainer_hook_can_be_switched_off_and_skips_unlabelled_data(tmp_path, saved_model, caplog):
    from components.trainer_module import store_directions

    args = _fn_args(tmp_path, "unused", {"directions": False})
    assert store_directions(saved_model, args) == "off"
    plain = str(tmp_path / "plain")
    write_examples(plain, [(np.zeros((32, 32, 3), np.uint8), {}) for _ in range(3)], "train")
    with caplog.at_level(logging.INFO, logger="components.trainer_module"):
        result = store_directions(saved_model, _fn_args(tmp_path, plain, {}))
    assert result.startswith("skipped: the 3 examples")
    assert "attribute directions: skipped, the training data has no usable attribute labels" in caplog.text
    assert not os.path.exists(os.path.join(saved_model, d.DIRECTIONS_FILE))
