"""`dcgan project IMAGE --server H:P`: a picture is cropped like the training data, projected by the model server's
`project` signature, and written as crop / reconstruction / z; bad input (not an image, too large, no face without
--center-crop, a missing file) is a usage error (exit 2) that says what to do."""

from __future__ import annotations

import json

import numpy as np
import pytest
from serving_helpers import MODEL, add_version, running_server, write_config
from test_projection import projectable_model

from dcgan import images as imlib
from dcgan.cli import main
from dcgan.latent import z_from_seeds


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("project_cli")
    base = str(root / "models" / MODEL)
    add_version(projectable_model(tmp_path_factory, tiny_run), base, 1)
    config = write_config(str(root / "models.config"), [{"name": MODEL, "base_path": base}])
    with running_server(model_config_file=config) as s:
        yield s


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_face_is_projected_and_its_crop_reconstruction_and_z_written(server, tmp_path, capsys):
    from serving.client import ServingClient

    with ServingClient(server.grpc_target) as client:
        face = imlib.to_uint8(client.images(z_from_seeds([21], 100), model=MODEL).outputs["images"])[0]
    image = tmp_path / "avatar.png"
    image.write_bytes(imlib.encode_png(face))
    code, out, err = run(["project", str(image), "--server", server.grpc_target, "--out", str(tmp_path / "me")],
                         capsys)
    assert code == 0, err
    assert "center-crop" in out and "version 1" in out
    record = json.load(open(tmp_path / "me" / "projection.json"))
    assert record["crop"] == "center-crop" and len(record["z"]) == 100 and record["version"] == 1
    np.testing.assert_array_equal(imlib.decode_png((tmp_path / "me" / "original.png").read_bytes()), face)
    recon = imlib.decode_png((tmp_path / "me" / "reconstruction.png").read_bytes())
    assert np.abs(recon.astype(int) - face).mean() < 12
    with ServingClient(server.grpc_target) as client:
        again = imlib.to_uint8(client.images(np.array([record["z"]], np.float32), model=MODEL).outputs["images"])[0]
    np.testing.assert_array_equal(again, recon)


def test_not_an_image_is_refused_before_any_server_call(tmp_path, capsys):
    path = tmp_path / "notes.jpg"
    path.write_text("not a picture")
    code, _, err = run(["project", str(path), "--server", "127.0.0.1:1"], capsys)
    assert code == 2 and "cannot be used: not_an_image" in err, err


def test_a_file_over_the_size_cap_is_refused(tmp_path, capsys):
    path = tmp_path / "big.png"
    path.write_bytes(imlib.encode_png(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    assert path.stat().st_size > 1000
    code, _, err = run(["project", str(path), "--server", "127.0.0.1:1", "--max-bytes", "1000"], capsys)
    assert code == 2 and "over the limit of 1000 (--max-bytes)" in err, err


def test_a_missing_file_is_a_usage_error(tmp_path, capsys):
    code, _, err = run(["project", str(tmp_path / "nope.png"), "--server", "127.0.0.1:1"], capsys)
    assert code == 2 and "is not a file" in err


def test_a_photo_without_a_face_needs_center_crop(server, tmp_path, capsys):
    path = tmp_path / "landscape.png"
    path.write_bytes(imlib.encode_png(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)))
    code, _, err = run(["project", str(path), "--server", server.grpc_target, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "no face found" in err and "--center-crop" in err, err
    code, out, err = run(["project", str(path), "--server", server.grpc_target, "--out", str(tmp_path / "o"),
                          "--center-crop"], capsys)
    assert code == 0 and "center-crop" in out, err


def test_an_unreachable_server_is_reported(tmp_path, capsys):
    path = tmp_path / "a.png"
    path.write_bytes(imlib.encode_png(np.zeros((32, 32, 3), np.uint8)))
    code, _, err = run(["project", str(path), "--server", "127.0.0.1:1", "--timeout", "5"], capsys)
    assert code == 1 and "127.0.0.1:1" in err and "UNAVAILABLE" in err, err
