"""dcgan.quality and the face features: the per-image measurements the ingest writes as `quality/*` and `face/*`.

Measured on scikit-image's astronaut (align mode, 64 px): face confidence 0.99995, size 0.217 (a 111 px box in a
512 px photo), roll +2.9°; rotated by 20° counter-clockwise (cv2.getRotationMatrix2D(+20)): roll −16.2°.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from dcgan import faces, quality


def _uniform(value: int | tuple[int, int, int], size: int = 32) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, np.uint8), (size, size, 3)).copy()


def test_a_uniform_grey_image_is_greyscale_flat_and_blur_free():
    f = quality.image_features(_uniform(128))
    assert f["saturation"] == 0.0 and f["colour"] == quality.GREYSCALE
    assert f["contrast"] == 0.0, "a uniform image has no contrast"
    assert f["sharpness"] == 0.0, "a uniform image has no edges"
    assert f["brightness"] == pytest.approx(128 / 255) and f["exposure"] == quality.NORMAL


def test_a_dark_image_is_dark_and_a_white_one_bright():
    assert quality.image_features(_uniform(20))["exposure"] == quality.DARK
    assert quality.image_features(_uniform(250))["exposure"] == quality.BRIGHT


def test_saturation_and_brightness_follow_their_definitions():
    red = quality.image_features(_uniform((255, 0, 0)))
    assert red["saturation"] == 1.0 and red["colour"] == quality.COLOUR
    assert red["brightness"] == pytest.approx(0.299), "Rec. 601 luma of pure red"
    half = _uniform(0)
    half[:, 16:] = 255
    f = quality.image_features(half)
    assert f["brightness"] == pytest.approx(0.5) and f["contrast"] == pytest.approx(0.5)


def test_sharpness_drops_when_a_photo_is_blurred():
    photo = data.coffee()
    sharp = quality.image_features(photo)["sharpness"]
    blurred = quality.image_features(cv2.GaussianBlur(photo, (0, 0), 3))["sharpness"]
    assert blurred < sharp / 10, f"blurring must cut the Laplacian variance: {sharp:.0f} -> {blurred:.0f}"


def test_features_are_plain_python_values_and_reject_non_rgb_input():
    f = quality.image_features(data.astronaut())
    assert set(f) == {"brightness", "contrast", "saturation", "sharpness", "colour", "exposure"}
    assert all(type(v) in (float, str) for v in f.values())
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        quality.image_features(np.zeros((8, 8), np.uint8))


def test_face_roll_is_the_eye_line_angle_clockwise_in_image_coordinates():
    level = faces.Face((0, 0, 10, 10), 1.0, np.array([[0, 0], [10, 0], [5, 5], [2, 8], [8, 8]], float))
    tilted = faces.Face((0, 0, 10, 10), 1.0, np.array([[0, 0], [10, 10], [5, 5], [2, 8], [8, 8]], float))
    assert level.roll == 0.0 and tilted.roll == pytest.approx(45.0)


@pytest.fixture(scope="module")
def astronaut_and_rotated():
    """(face features, quality features) of the astronaut and of the astronaut rotated 20° counter-clockwise."""
    image = data.astronaut()
    h, w = image.shape[:2]
    rotated = cv2.warpAffine(image, cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0), (w, h),
                             borderMode=cv2.BORDER_REFLECT_101)
    config = faces.CropConfig(mode=faces.ALIGN, size=64)
    out = []
    for photo in (image, rotated):
        ((crop, face),) = faces.crop_images_with_faces([photo], config)
        assert face is not None and crop.shape == (64, 64, 3)
        out.append((faces.face_features(face, photo.shape, config.margin), quality.image_features(crop)))
    return out


def test_astronaut_face_features(astronaut_and_rotated):
    (face, crop), _ = astronaut_and_rotated
    assert face["confidence"] > 0.9
    assert 0.15 < face["size"] < 0.3, f"the astronaut's face box is ~1/5 of the photo's side, got {face['size']:.3f}"
    assert abs(face["roll"]) < 5, f"the astronaut's eyes are nearly level, got roll {face['roll']:.1f}°"
    assert face["margin"] == faces.DEFAULT_MARGIN
    assert crop["colour"] == quality.COLOUR and crop["exposure"] == quality.NORMAL and crop["sharpness"] > 100


def test_a_rotated_face_has_the_rotation_as_its_roll(astronaut_and_rotated):
    (upright, _), (rotated, _) = astronaut_and_rotated
    assert rotated["roll"] == pytest.approx(-20, abs=5), "20° counter-clockwise is a roll of −20°"
    assert rotated["roll"] - upright["roll"] == pytest.approx(-20, abs=3)
    assert rotated["confidence"] > 0.9


def test_crop_images_keeps_its_results_and_with_faces_adds_the_chosen_face():
    photos = [data.astronaut(), data.coffee()]
    config = faces.CropConfig(mode=faces.ALIGN, size=32)
    plain = faces.crop_images(photos, config)
    with_faces = faces.crop_images_with_faces(photos, config)
    np.testing.assert_array_equal(plain[0], with_faces[0][0])
    assert isinstance(plain[1], faces.imlib.ImageRejected) and plain[1].reason == faces.NO_FACE
    assert with_faces[1][0].reason == faces.NO_FACE and with_faces[1][1] is None
    assert with_faces[0][1].confidence > 0.9
    small = faces.crop_images_with_faces([photos[0]], faces.CropConfig(mode=faces.ALIGN, size=32,
                                                                        min_face_size=400))
    (rejected, face), = small
    assert rejected.reason == faces.FACE_TOO_SMALL and face is not None, "a too-small face is still reported"
    assert faces.crop_images_with_faces(photos, faces.CropConfig(mode=faces.CENTER_CROP, size=32))[0][1] is None
