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
from dcgan.directions.labels import _heldout_by_hash  # the held-out rule, which the judge's halves must not follow

AVATARS = 400  # 320 train (two halves of 160: the classifier's and the judge's) + 80 eval, 32×32 (~6 s)


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
    """An Examples directory of labelled avatars: Split-train (320) and Split-eval (80)."""
    from dcgan.avatars import iter_avatars

    folder = str(tmp_path_factory.mktemp("avatar_examples"))
    items = [(image, labels) for _, image, labels in iter_avatars(AVATARS, seed=0, size=32)]
    write_examples(folder, items[:320], "train")
    write_examples(folder, items[320:], "eval")
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
@pytest.mark.slow
def test_dcgan_directions_writes_directions_json_beside_the_savedmodel(saved_model, avatar_examples, capsys):
    from dcgan.cli import main

    # 60 optimizer steps per network (the default floor of 300 cost a minute here): what is checked is the document
    # and the two exported networks, not how well they classify.
    assert main(["directions", saved_model, "--data", avatar_examples, "--samples", "400", "--eval-samples", "48",
                 "--epochs", "4", "--min-steps", "60"]) == 0
    out = capsys.readouterr().out
    assert "acc" in out and "Eyeglasses" in out and "-> " + os.path.join(saved_model, d.DIRECTIONS_FILE) in out
    doc = d.read_directions(os.path.join(saved_model, d.DIRECTIONS_FILE), z_dim=100)
    assert doc["format"] == d.FORMAT and doc["z_dim"] == 100 and doc["model"]["image_shape"] == [32, 32, 3]
    assert doc["data"]["train_examples"] == 320 and doc["data"]["heldout_examples"] == 80
    assert doc["data"]["heldout"].startswith("the eval split")
    assert doc["samples"]["fit_seed"] != doc["samples"]["eval_seed"], "effects must be measured on fresh samples"
    assert doc["amounts"] == [-3.0, -2.0, -1.0, 0.0, 1.0, 1.5, 2.0, 2.5, 3.0]
    # The classifier and the judge took disjoint halves of the 320 training avatars, another architecture and seed.
    split = doc["data"]
    assert split["classifier_examples"] + split["judge_examples"] == 320
    assert 130 < split["judge_examples"] < 190, split
    assert doc["judge"]["saved_model"] == d.JUDGE_DIR and doc["classifier"]["saved_model"] == d.CLASSIFIER_DIR
    assert doc["judge"]["architecture"] != doc["classifier"]["architecture"]
    assert doc["judge"]["seed"] != doc["classifier"]["seed"] and doc["judge"]["examples"] == split["judge_examples"]
    assert {"Eyeglasses", "Smiling", "Facial_Hair"} <= set(doc["attributes"])
    assert "Bald" in doc["skipped"] and "too few" in doc["skipped"]["Bald"]  # 6 of 320 faces: not enough
    for name, entry in doc["attributes"].items():
        assert np.linalg.norm(entry["normal"]) == pytest.approx(1.0, abs=1e-5), name
        assert entry["classifier"]["n"] == 80 and 0 <= entry["classifier"]["accuracy"] <= 1
        assert entry["judge"]["n"] == 80 and 0 <= entry["judge"]["balanced_accuracy"] <= 1, "same held-out examples"
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
            assert entry["effect"]["delta"][3] == 0.0 and len(entry["effect"]["mean_score"]) == 9
            assert entry["suggested_amount"] in (1.0, 1.5, 2.0, 2.5, 3.0), name
            assert len(entry["effect"]["churn"]) == 9 and entry["effect"]["churn"][3] == 0.0, name
        if entry["kind"] == "conditional":  # orthogonal to every normal it fixes
            assert entry["attribute"] not in entry["fixed"]
            for other in entry["fixed"]:
                assert abs(np.dot(entry["vector"], doc["attributes"][other]["normal"])) < 1e-4
    n = len(doc["attributes"])
    assert kinds["mean_difference"] == kinds["boundary"] == n and kinds["sefa"] == 5
    assert doc["sefa"]["components"] == 5 and 0 < sum(doc["sefa"]["explained"]) <= 1
    quality = doc["quality"]
    assert quality["amount"] == 2.0 and quality["graded_by"] == "judge" and quality["fitted_with"] == "classifier"
    assert quality["judged"] == d.judged_attributes(doc) and set(quality["rows"]) == set(quality["judged"])
    assert quality["control"]["directions"] == 8 and quality["control"]["seed"] == doc["samples"]["control_seed"]
    assert doc["control"]["by"] == "classifier" and set(doc["control"]["churn"]) == {"1", "1.5", "2", "2.5", "3"}
    assert quality["goals"] == {"success": 0.85, "churn_ratio": 1.5} and quality["default_kind"] == "mean_difference"
    for name, row in quality["rows"].items():
        for kind, cell in row.items():
            assert {"success", "churn", "churn_ratio", "agreement", "fit", "suggested"} <= set(cell), (name, kind)
            assert cell["suggested"]["amount"] == doc["directions"][name + d.KIND_SUFFIX[kind]]["suggested_amount"]
    assert "graded by the judge" in out and "random control: 8 random unit directions" in out
    # The exported classifier scores like the one that labelled the samples, without training code.
    classifier = d.AttributeClassifier(os.path.join(saved_model, d.CLASSIFIER_DIR))
    assert classifier.names == list(doc["attributes"]) and classifier.threshold == 0.5
    judge = d.AttributeClassifier(os.path.join(saved_model, d.JUDGE_DIR))
    assert judge.names == classifier.names and judge.info["role"] == "judge" and classifier.info["role"] == "classifier"
    assert judge.info["classifier"]["Eyeglasses"] == doc["attributes"]["Eyeglasses"]["judge"]
    scores = classifier.scores(np.zeros((3, 32, 32, 3), np.float32))
    assert scores.shape == (3, n) and np.all((scores >= 0) & (scores <= 1))
    counts = np.array(classifier.info["cooccurrence"]["counts"])
    assert counts.shape == (n, n, 2, 2) and counts[0, 0].sum() == 320  # every training avatar has every flag
    # Both learned what glasses look like (held-out real avatars neither trained on).
    assert doc["attributes"]["Eyeglasses"]["classifier"]["balanced_accuracy"] > 0.75
    assert doc["attributes"]["Eyeglasses"]["judge"]["balanced_accuracy"] > 0.75
    # Measured afresh from the exported networks alone (bench/directions_quality.py), on other faces.
    table = d.measure_quality(saved_model, samples=24, seed=77, control_directions=3)
    assert table["graded_by"] == "judge" and table["control"]["directions"] == 3 and table["samples"] == 24
    assert table["base_verdicts"].shape == (24, n) and table["names"] == classifier.names
    assert set(table["rows"]) == set(quality["rows"])


def test_the_judge_halves_are_disjoint_reproducible_and_independent_of_order():
    keys = [f"example-{i}" for i in range(2000)]
    half = d.judge_half(keys)
    assert 0.45 < half.mean() < 0.55
    np.testing.assert_array_equal(d.judge_half(keys[::-1]), half[::-1])
    held = np.array([_heldout_by_hash(k, 0.5) for k in keys])
    assert 0.4 < np.mean(half == held) < 0.6, "another hash than the held-out rule's"


def test_without_a_judge_the_classifier_trains_on_every_example_and_grades_itself(saved_model, avatar_examples,
                                                                                   capsys):
    from dcgan.cli import main

    assert main(["directions", saved_model, "--data", avatar_examples, "--no-judge", "--samples", "200",
                 "--eval-samples", "16", "--epochs", "1", "--min-steps", "20"]) == 0
    assert "judge ->" not in capsys.readouterr().out
    doc = d.read_directions(os.path.join(saved_model, d.DIRECTIONS_FILE))
    assert "judge" not in doc and doc["data"]["classifier_examples"] == 320 and doc["data"]["judge_examples"] == 0
    assert doc["quality"]["graded_by"] == "classifier" and not os.path.exists(os.path.join(saved_model, d.JUDGE_DIR))
    for row in doc["quality"]["rows"].values():
        assert all("fit" not in cell for cell in row.values())


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
    assert doc["config"]["samples"] == 200 and doc["data"]["heldout_examples"] == 80
    assert os.path.isfile(os.path.join(fn_args.serving_model_dir, d.JUDGE_DIR, "saved_model.pb"))
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
