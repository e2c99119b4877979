"""The `project` signature (bring your own face): image → z + reconstruction by in-graph optimisation, answered in TF2
and in a TF1 session through the real model server (gRPC and REST), with bad input refused as INVALID_ARGUMENT; the
host-side crop (not an image, no face, already-cropped avatars)."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from serving_helpers import MODEL, Stubs, add_version, code_of, running_server, write_config

from dcgan import images as imlib
from dcgan.latent import z_from_seeds
from dcgan.projection import (
    MAX_PROJECT_BATCH,
    NoFaceFound,
    ProjectionConfig,
    crop_for_projection,
    is_already_cropped,
    to_model_range,
)

Z_DIM = 100
SIZE = 32


def projectable_model(tmp_path_factory, tiny_run) -> str:
    """The tiny run's generator with its output layer scaled up (six training steps leave every face a flat grey,
    where "reconstructed closely" would prove nothing; see test_studio_api.visible_tiny_model), exported with the
    run's discriminator, so `project` uses its feature term. Built once per session."""
    out = tmp_path_factory.getbasetemp() / "projectable_model"
    if (out / "saved_model.pb").is_file():
        return str(out)
    from dcgan.export import export_generator
    from dcgan.run import load_models

    models = load_models(tiny_run, precision="float32")
    generator = models.sampling_generator
    spread = float(np.std(generator(z_from_seeds(list(range(32)), Z_DIM), training=False)))
    layer = generator.get_layer("to_image")
    layer.set_weights([w * (0.6 / max(spread, 1e-6)) for w in layer.get_weights()])
    return export_generator(generator, models.config.model, str(out), {"note": "tiny model, output layer scaled"},
                            discriminator=models.discriminator, projection=ProjectionConfig(steps=40))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_run) -> str:
    return projectable_model(tmp_path_factory, tiny_run)


@pytest.fixture(scope="module")
def loaded(model_dir):
    from dcgan.export import LoadedGenerator

    return LoadedGenerator(model_dir)


@pytest.fixture(scope="module")
def served(tmp_path_factory, model_dir):
    root = tmp_path_factory.mktemp("project_served")
    base = str(root / "models" / MODEL)
    add_version(model_dir, base, 1)
    config = write_config(str(root / "models.config"), [{"name": MODEL, "base_path": base}])
    with running_server(model_config_file=config) as server:
        stubs = Stubs(server.grpc_target)
        http = httpx.Client(base_url=server.rest_url, timeout=60)
        try:
            yield SimpleNamespace(server=server, stubs=stubs, http=http)
        finally:
            http.close()
            stubs.close()


def targets(loaded, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    z = z_from_seeds(seeds, Z_DIM)
    return z, loaded.images(z)


def best_random_mse(loaded, x: np.ndarray, n: int = 256) -> np.ndarray:
    pool = loaded.images(np.random.default_rng(99).standard_normal((n, Z_DIM)).astype(np.float32))
    return ((pool[None] - x[:, None]) ** 2).mean(axis=(2, 3, 4)).min(axis=1)


# -- the signature ----------------------------------------------------------------------------------------------------
def test_a_generated_face_is_reconstructed_far_closer_than_the_best_random_sample(loaded):
    _, x = targets(loaded, [101, 202, 303])
    out = loaded.project(x)
    assert out["z"].shape == (3, Z_DIM) and out["images"].shape == x.shape and out["distance"].shape == (3,)
    np.testing.assert_allclose(out["distance"], ((out["images"] - x) ** 2).mean(axis=(1, 2, 3)), rtol=1e-4)
    random_best = best_random_mse(loaded, x)
    assert np.all(out["distance"] < 0.2 * random_best), (out["distance"], random_best)
    # The z found is a real z of the model: rendering it again gives the reconstruction.
    np.testing.assert_allclose(loaded.images(out["z"]), out["images"], atol=1e-4)


def test_projecting_is_deterministic_and_rows_are_independent(loaded):
    _, x = targets(loaded, [7, 8])
    both = loaded.project(x)
    alone = loaded.project(x[1:])
    np.testing.assert_allclose(both["z"][1], alone["z"][0], atol=1e-4)
    np.testing.assert_allclose(loaded.project(x)["z"], both["z"], atol=1e-5)


def test_the_export_records_the_projection_settings_and_the_feature_term(model_dir, tiny_saved_model):
    from dcgan.export import read_metadata

    meta = read_metadata(model_dir)
    assert "project" in meta["signatures"]
    assert meta["projection"]["steps"] == 40 and meta["projection"]["feature_loss"] == "discriminator"
    assert meta["projection"]["max_batch"] == MAX_PROJECT_BATCH
    # `dcgan export` / the Trainer's export (export_run) bring the run's discriminator along.
    assert read_metadata(tiny_saved_model)["projection"]["feature_loss"] == "discriminator"


def test_an_export_without_a_discriminator_projects_on_pixels(tmp_path, tiny_run):
    from dcgan.export import LoadedGenerator, export_generator, read_metadata
    from dcgan.run import load_models

    models = load_models(tiny_run, precision="float32")
    path = export_generator(models.generator, models.config.model, str(tmp_path / "g"),
                            projection=ProjectionConfig(candidates=4, restarts=1, steps=2))
    assert read_metadata(path)["projection"]["feature_loss"] == "none"
    out = LoadedGenerator(path).project(np.zeros((1, SIZE, SIZE, 3), np.float32))
    assert np.isfinite(out["distance"]).all()


@pytest.mark.parametrize("bad", [
    dict(candidates=0), dict(restarts=5, candidates=4), dict(steps=-1), dict(learning_rate=0.0),
    dict(feature_weight=float("nan")),
])
def test_bad_projection_settings_are_refused(bad):
    with pytest.raises(ValueError, match="projection"):
        ProjectionConfig(**bad).validate()


# -- through the model server (TF1 session, like TF Serving) ----------------------------------------------------------
def test_grpc_project_answers_from_the_session_and_its_z_renders_the_reconstruction(served, loaded):
    _, x = targets(loaded, [11, 12])
    response = served.stubs.predict({"image": x}, signature="project")
    assert set(response.outputs) == {"z", "images", "distance", "loss"}
    z = tf.make_ndarray(response.outputs["z"])
    images = tf.make_ndarray(response.outputs["images"])
    distance = tf.make_ndarray(response.outputs["distance"])
    assert z.shape == (2, Z_DIM) and images.shape == (2, SIZE, SIZE, 3)
    assert np.all(distance < 0.2 * best_random_mse(loaded, x)), distance
    # The same answer as the SavedModel in TF2 (same seeded candidates, same steps).
    np.testing.assert_allclose(z, loaded.project(x)["z"], atol=2e-3)
    rendered = tf.make_ndarray(served.stubs.predict({"z": z}).outputs["images"])
    np.testing.assert_allclose(rendered, images, atol=1e-4)


def test_rest_project_answers_with_tf_servings_json(served, loaded):
    _, x = targets(loaded, [13])
    r = served.http.post(f"/v1/models/{MODEL}:predict", json={"signature_name": "project", "instances": x.tolist()})
    assert r.status_code == 200, r.text
    row = r.json()["predictions"][0]
    assert len(row["z"]) == Z_DIM and np.asarray(row["images"]).shape == (SIZE, SIZE, 3)
    assert row["distance"] < 0.2 * best_random_mse(loaded, x)[0]


def _bad_project_requests():
    ok = np.zeros((1, SIZE, SIZE, 3), np.float32)
    return [
        ("wrong image size", {"image": np.zeros((1, 16, 16, 3), np.float32)}, "[1,16,16,3] is not compatible"),
        ("no batch dimension", {"image": ok[0]}, "shape"),
        ("uint8 pixels", {"image": ok.astype(np.uint8)}, "to be float but uint8 is provided"),
        ("float64", {"image": ok.astype(np.float64)}, "to be float but double is provided"),
        ("values outside [-1, 1]", {"image": ok + 255.0}, "image values must be in [-1, 1]"),
        ("NaN", {"image": ok * np.nan}, "image must be finite"),
        ("too many images", {"image": np.zeros((MAX_PROJECT_BATCH + 1, SIZE, SIZE, 3), np.float32)},
         f"project takes at most {MAX_PROJECT_BATCH} images"),
    ]


@pytest.mark.parametrize("case", _bad_project_requests(), ids=lambda c: c[0])
def test_bad_project_input_is_invalid_argument_and_the_server_keeps_serving(served, case):
    _, inputs, message = case
    code, details = code_of(lambda: served.stubs.predict(inputs, signature="project"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert message in details, details
    assert tf.make_ndarray(served.stubs.predict({"z": np.zeros((1, Z_DIM), np.float32)}).outputs["images"]).shape \
        == (1, SIZE, SIZE, 3)


# -- the host-side crop -----------------------------------------------------------------------------------------------
def test_an_avatar_sized_square_is_centre_cropped_without_the_detector():
    avatar = np.zeros((128, 128, 3), np.uint8)
    avatar[32:96, 32:96] = 200
    crop, how = crop_for_projection(imlib.encode_png(avatar), SIZE)
    assert how == "center-crop" and crop.shape == (SIZE, SIZE, 3)
    assert is_already_cropped(avatar, 64) and not is_already_cropped(np.zeros((600, 400, 3), np.uint8), 64)
    x = to_model_range([crop])
    assert x.dtype == np.float32 and x.min() >= -1 and x.max() <= 1


def test_not_an_image_is_rejected_by_name():
    with pytest.raises(imlib.ImageRejected, match="not_an_image"):
        crop_for_projection(b"this is a text file, not a picture", SIZE)


def test_a_photo_without_a_face_says_so_and_centre_crop_proceeds():
    noise = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    data = imlib.encode_png(noise)
    with pytest.raises(NoFaceFound, match="no face found in the 400x300 image.*centre-crop"):
        crop_for_projection(data, SIZE)
    crop, how = crop_for_projection(data, SIZE, "center")
    assert how == "center-crop" and crop.shape == (SIZE, SIZE, 3)


def test_a_photo_with_a_face_is_aligned():
    from skimage import data as skdata

    crop, how = crop_for_projection(imlib.encode_png(skdata.astronaut()), SIZE)
    assert how == "aligned" and crop.shape == (SIZE, SIZE, 3)


def test_the_warmup_file_still_covers_the_cheap_signatures(model_dir):
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(model_dir, "assets.extra", "tf_serving_warmup_requests")
    names = [prediction_log_pb2.PredictionLog.FromString(r.numpy()).predict_log.request.model_spec.signature_name
             for r in tf.data.TFRecordDataset(path)]
    assert names == ["serving_default", "generate", "interpolate"]
    assert json.load(open(os.path.join(model_dir, "assets.extra", "dcgan.json")))["signatures"][-1] == "project"
