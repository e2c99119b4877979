"""dcgan.avatars: the built-in avatar set is deterministic, labelled, varied, and framed on the head."""

from __future__ import annotations

import collections
import hashlib
import os

import numpy as np
import pytest

from dcgan import avatars
from dcgan import images as imlib


@pytest.fixture(scope="module")
def avatar_set():
    """96 avatars of seed 0 at 64×64 (their render time is measured by bench/behaviour_timings.py)."""
    return avatars.avatar_array(96, seed=0, size=64)


def _hex_to_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])


def test_same_seed_and_index_give_the_same_avatar():
    a_img, a_lab = avatars.generate_avatar(7, 3, size=32)
    b_img, b_lab = avatars.generate_avatar(7, 3, size=32)
    np.testing.assert_array_equal(a_img, b_img)
    assert a_lab == b_lab


def test_a_set_is_a_prefix_of_a_larger_set_and_seeds_differ():
    small, small_labels = avatars.avatar_array(5, seed=1, size=32)
    large, large_labels = avatars.avatar_array(8, seed=1, size=32)
    np.testing.assert_array_equal(small, large[:5])
    assert small_labels == large_labels[:5]
    other, _ = avatars.avatar_array(5, seed=2, size=32)
    assert not np.array_equal(small, other)


def test_every_avatar_has_every_label_and_flags_agree_with_parts(avatar_set):
    _, labels = avatar_set
    for a in labels:
        assert set(a) == set(avatars.ATTRIBUTE_NAMES)
        assert all(isinstance(v, str) and v for v in a.values())
        assert all(a[f] in ("0", "1") for f in avatars.FLAG_NAMES)
        assert (a["Wearing_Hat"] == "1") == (a["hat"] != "none")
        assert (a["Eyeglasses"] == "1") == (a["accessory"] != "none")
        assert (a["Bald"] == "1") == (a["hat"] == "none" and a["hair"] == "no_hair")
        assert (a["facial_hair"] == "none") == (a["facial_hair_color"] == "none")
        hair_colour_flags = sum(a[f] == "1" for f in ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"))
        assert hair_colour_flags <= 1


def test_the_set_is_varied(avatar_set):
    images, labels = avatar_set
    assert len({hashlib.sha256(img.tobytes()).hexdigest() for img in images}) == len(images), "duplicate avatars"
    for name, at_least in [("hair", 20), ("skin", 6), ("eyes", 6), ("mouth", 8), ("background", 6)]:
        seen = len({a[name] for a in labels})
        assert seen >= at_least, f"only {seen} different {name} values in 96 avatars"
    counts = collections.Counter(a["Eyeglasses"] for a in labels)
    assert 15 <= counts["1"] <= 55, f"glasses on {counts['1']} of 96 avatars (expected ~35%)"


def test_head_is_centred_and_fills_the_frame(avatar_set, artifacts_dir):
    images, labels = avatar_set
    imlib.save_image(imlib.make_grid(images[:64], 8), os.path.join(artifacts_dir, "avatars_64.png"))
    for img, a in zip(images, labels, strict=True):
        skin = _hex_to_rgb(avatars._SKIN[a["skin"]])
        xs = np.nonzero(np.abs(img.astype(int) - skin).sum(axis=-1) < 24)[1]
        assert len(xs) > 0.08 * img.shape[0] * img.shape[1], "the face should cover a good part of the frame"
        cx = xs.mean() / img.shape[1]
        assert abs(cx - 0.5) < 0.1, f"face centre at x={cx:.2f} of the width"
        background = _hex_to_rgb(avatars.BACKGROUNDS[a["background"]])
        foreground = np.abs(img.astype(int) - background).sum(axis=-1) > 24
        assert foreground.mean() > 0.45, f"the avatar covers only {foreground.mean():.0%} of the frame"
        rows = np.nonzero(foreground.any(axis=1))[0]
        assert rows.min() <= 0.2 * img.shape[0] and rows.max() == img.shape[0] - 1, "head to shoulders in frame"
        assert foreground[:, 0].mean() < 0.9 or foreground[:, -1].mean() < 0.9, "some background on the sides"


def test_renders_at_32_and_64(avatar_set, artifacts_dir):
    large, _ = avatar_set
    assert large.shape == (96, 64, 64, 3) and large.dtype == np.uint8
    small, _ = avatars.avatar_array(16, seed=0, size=32)
    assert small.shape == (16, 32, 32, 3) and small.dtype == np.uint8
    imlib.save_image(imlib.make_grid(small, 8), os.path.join(artifacts_dir, "avatars_32.png"))


@pytest.mark.parametrize("source, expected", [("avatars:10", (10, 0)), ("avatars:2000:7", (2000, 7)),
                                              ("/data/faces", None)])
def test_parse_source(source, expected):
    assert avatars.parse_source(source) == expected


@pytest.mark.parametrize("source", ["avatars:", "avatars:ten:1", "avatars:0:1", "avatars:5:-1", "avatars:1:2:3"])
def test_parse_source_rejects_malformed(source):
    with pytest.raises(ValueError):
        avatars.parse_source(source)
