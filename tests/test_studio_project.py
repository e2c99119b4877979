"""`POST /api/project` (bring your own face) against the studio, our model server and a tiny generator exported with
its discriminator: an upload becomes its crop, the model's reconstruction and a z that renders it; bad uploads (not
an image, too large, no face, wrong content type, no file) get clear errors and the no-face answer offers a
centre-crop."""

from __future__ import annotations

import numpy as np
import pytest
from serving_helpers import MODEL, add_version, running_server, write_config
from test_projection import projectable_model
from test_studio_api import error, ok, pixels, studio_client

from dcgan import images as imlib
from dcgan.latent import z_from_seeds


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("studio_project")
    base = str(root / "models" / MODEL)
    add_version(projectable_model(tmp_path_factory, tiny_run), base, 1)
    config = write_config(str(root / "models.config"), [{"name": MODEL, "base_path": base}])
    with running_server(model_config_file=config) as server:
        yield server


@pytest.fixture(scope="module")
def api(served):
    with studio_client(server=served.grpc_target) as client:
        yield client


@pytest.fixture(scope="module")
def generated_face(api) -> bytes:
    """A face of the model itself as a PNG upload (32×32: an 'avatar', centre-cropped, not detected)."""
    face = ok(api.post("/api/images", json={"z": z_from_seeds([5], 100)[0].tolist()}))["faces"][0]
    return imlib.encode_png(pixels(face["png"]))


def test_an_uploaded_face_comes_back_with_its_crop_reconstruction_and_z(api, generated_face):
    body = ok(api.post("/api/project", files={"file": ("me.png", generated_face, "image/png")}))
    assert body["version"] == 1 and body["crop"] == "center-crop"
    assert len(body["z"]) == 100 and body["distance"] >= 0
    original = pixels(body["original"])
    recon = pixels(body["png"])
    np.testing.assert_array_equal(original, imlib.decode_png(generated_face))
    assert np.abs(recon.astype(float) - original.astype(float)).mean() < 12, "a close reconstruction"
    # The z is a face of the model like any other: /api/images renders the same reconstruction.
    again = ok(api.post("/api/images", json={"z": body["z"]}))["faces"][0]
    np.testing.assert_array_equal(pixels(again["png"]), recon)


def test_a_raw_image_body_works_too(api, generated_face):
    body = ok(api.post("/api/project?center_crop=true", content=generated_face,
                       headers={"Content-Type": "image/png"}))
    assert body["crop"] == "center-crop" and len(body["z"]) == 100


def test_not_an_image_is_a_400_naming_the_file(api):
    e = error(api.post("/api/project", files={"file": ("notes.jpg", b"just some text", "image/jpeg")}), 400)
    assert e["code"] == "not_an_image" and e["field"] == "file" and "not_an_image" in e["message"]


def test_an_empty_file_is_a_400(api):
    e = error(api.post("/api/project", files={"file": ("empty.png", b"", "image/png")}), 400)
    assert e["code"] == "not_an_image" and "empty" in e["message"]


def test_an_upload_over_the_size_cap_is_a_413(api):
    e = error(api.post("/api/project", files={"file": ("huge.png", b"\x89PNG" + b"0" * (1 << 20), "image/png")}), 413)
    assert e["code"] == "body_too_large"


def test_a_photo_without_a_face_is_a_400_offering_a_centre_crop_which_then_works(api):
    noise = imlib.encode_png(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    e = error(api.post("/api/project", files={"file": ("landscape.png", noise, "image/png")}), 400)
    assert e["code"] == "no_face" and "center_crop=true" in e["message"]
    assert e["details"][0]["offer"] == {"center_crop": True}
    body = ok(api.post("/api/project", files={"file": ("landscape.png", noise, "image/png")},
                       data={"center_crop": "true"}))
    assert body["crop"] == "center-crop" and pixels(body["original"]).shape == (32, 32, 3)


@pytest.mark.parametrize("request_kwargs,status,code,field", [
    ({"json": {"file": "me.png"}}, 415, "unsupported_media_type", None),
    ({"files": {"picture": ("me.png", b"x", "image/png")}}, 400, "invalid_request", "file"),
    ({"files": {"file": ("me.png", b"x", "image/png")}, "data": {"version": "one"}}, 400, "invalid_request",
     "version"),
    ({"files": {"file": ("me.png", b"x", "image/png")}, "data": {"model": "../etc"}}, 400, "invalid_request",
     "model"),
])
def test_malformed_project_requests_are_refused_by_name(api, request_kwargs, status, code, field):
    e = error(api.post("/api/project", **request_kwargs), status)
    assert e["code"] == code and e.get("field") == field, e
