"""dcgan.faces: real MTCNN detection on the faces scikit-image ships, and 5-landmark similarity alignment.

Measured (the thresholds below leave room for CPU numeric noise, not for regressions):
  * astronaut: 1 face, confidence 0.9999; after alignment at 128 px the re-detected eyes sit 2.3–3.4% of the crop
    side from the template positions (the similarity fit itself leaves 1.6% on the eyes: a 5-point fit balances
    eyes, nose and mouth), for rotations of ±30° and scales 0.6–1.0.
  * LFW subset (25×25 grey): 99/100 faces detected and 0/100 non-faces at confidence 0.9 with the default canvas
    (the image is upscaled to 192 px inside a 256 px canvas). Plain MTCNN on the raw 25 px images finds 94/100.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from skimage import data

from dcgan import faces
from dcgan import images as imlib


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def detector() -> faces.FaceDetector:
    return faces.get_detector(256)


def _rotate(image: np.ndarray, angle: float, scale: float) -> np.ndarray:
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)


# -- geometry (no detector) ------------------------------------------------------------------------------------------
def test_similarity_transform_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = np.deg2rad(23.0), 0.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + shift
    m = faces.similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-9)
    np.testing.assert_allclose(faces.transform_points(m, src), dst, atol=1e-9)


def test_similarity_transform_never_mirrors_a_face():
    src = faces.TEMPLATE * 100
    mirrored = src * [-1, 1] + [100, 0]  # left/right swapped: only a reflection would fit exactly
    m = faces.similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0, "alignment must be a proper similarity (no reflection)"


def test_template_margin_shrinks_the_face_around_the_centre():
    tight, loose = faces.template_points(100, 0.0), faces.template_points(100, 0.25)
    np.testing.assert_allclose(tight, faces.TEMPLATE * 100)
    eye_gap = lambda p: p[1, 0] - p[0, 0]  # noqa: E731
    assert eye_gap(loose) == pytest.approx(eye_gap(tight) / 1.5)
    assert abs(loose[:, 0].mean() - 50) < abs(tight[:, 0].mean() - 50) + 1e-9
    assert loose[0, 0] < loose[1, 0] and loose[0, 1] < loose[3, 1], "eyes left/right, above the mouth"


def test_choose_face_policies():
    def face(x, y, side, conf):
        return faces.Face((x, y, side, side), conf, np.zeros((5, 2)))

    fs = [face(0, 0, 50, 0.95), face(80, 80, 30, 0.999), face(200, 200, 40, 0.97)]
    assert faces.choose_face(fs, "largest", (200, 200, 3)) is fs[0]
    assert faces.choose_face(fs, "confident", (200, 200, 3)) is fs[1]
    assert faces.choose_face(fs, "central", (200, 200, 3)) is fs[1]


def test_center_crop_and_none_modes_need_no_detector():
    img = np.zeros((100, 160, 3), np.uint8)
    img[:, 30:130] = 255  # the central 100×100 square is white, the sides black
    crop = faces.crop_image(img, faces.CropConfig(mode=faces.CENTER_CROP, size=32))
    assert crop.shape == (32, 32, 3) and crop.min() == 255
    crop = faces.crop_image(img, faces.CropConfig(mode=faces.CENTER_CROP, size=32, crop_size=50))
    assert crop.min() == 255
    resized = faces.crop_image(img, faces.CropConfig(mode=faces.NONE, size=32))
    assert resized.shape == (32, 32, 3) and resized[:, 0].max() == 0, "none = resize only, nothing cropped"


@pytest.mark.parametrize("bad", [dict(mode="zoom"), dict(size=4), dict(margin=2.0), dict(face="leftmost"),
                                 dict(min_confidence=1.5), dict(detect_size=16), dict(crop_size=3)])
def test_crop_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        faces.CropConfig(**bad).validate()


# -- real MTCNN ------------------------------------------------------------------------------------------------------
def test_astronaut_has_one_face_with_five_landmarks(detector, astronaut):
    (found,) = detector.detect([astronaut], min_confidence=0.5)
    assert len(found) == 1, f"expected exactly one face, got {len(found)}"
    face = found[0]
    assert face.confidence > 0.99
    left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
    np.testing.assert_allclose(left_eye, (202.6, 98.8), atol=6)
    np.testing.assert_allclose(right_eye, (245.8, 101.0), atol=6)
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    x, y, w, h = face.box
    assert all(x <= px <= x + w and y <= py <= y + h for px, py in face.landmarks)


def test_alignment_puts_the_eyes_on_the_template(detector, astronaut, artifacts_dir):
    size = 128
    face = detector.detect([astronaut])[0][0]
    matrix = faces.similarity_transform(face.landmarks, faces.template_points(size))
    fit = np.linalg.norm(faces.transform_points(matrix, face.landmarks)[:2] - faces.template_points(size)[:2], axis=1)
    assert fit.max() / size < 0.025, f"similarity fit leaves the eyes {fit / size} of the side off"

    crop = faces.align_face(astronaut, face.landmarks, size)
    imlib.save_image(crop, os.path.join(artifacts_dir, "faces_astronaut_aligned.png"))
    again = detector.detect([crop])[0]
    assert len(again) == 1, "the aligned crop must still contain one detectable face"
    eye_error = np.linalg.norm(again[0].landmarks[:2] - faces.template_points(size)[:2], axis=1) / size
    assert eye_error.max() < 0.05, f"eyes {eye_error} of the crop side away from the template"


@pytest.mark.parametrize("angle, scale", [(-30, 0.8), (15, 0.6), (30, 1.0)])
def test_alignment_undoes_rotation_and_scale(detector, astronaut, angle, scale):
    size = 128
    upright = faces.crop_image(astronaut, faces.CropConfig(mode=faces.ALIGN, size=size, min_face_size=0))
    turned = faces.crop_image(_rotate(astronaut, angle, scale),
                              faces.CropConfig(mode=faces.ALIGN, size=size, min_face_size=0))
    eyes = detector.detect([turned])[0][0].landmarks[:2]
    tilt = np.degrees(np.arctan2(eyes[1, 1] - eyes[0, 1], eyes[1, 0] - eyes[0, 0]))
    assert abs(tilt) < 4, f"eyes tilted {tilt:.1f}° after aligning a face rotated {angle}°"
    template_gap = np.diff(faces.template_points(size)[:2, 0])[0]
    assert abs(np.linalg.norm(eyes[1] - eyes[0]) / template_gap - 1) < 0.12, "scale not normalised"
    centre = slice(size // 4, 3 * size // 4)
    diff = np.abs(upright[centre, centre].astype(int) - turned[centre, centre]).mean()
    assert diff < 20, f"the aligned face differs from the upright one by {diff:.1f} grey levels on average"


def test_lfw_faces_are_detected_and_non_faces_are_not(detector):
    lfw = (data.lfw_subset() * 255).round().astype(np.uint8)  # 200×25×25: rows 0-99 faces, 100-199 not
    found = detector.detect([np.dstack([g] * 3) for g in lfw], min_confidence=0.9)
    hits = np.array([len(f) > 0 for f in found])
    faces_found, false_alarms = hits[:100].sum(), hits[100:].sum()
    print(f"LFW 25x25 at detect_size=256: {faces_found}/100 faces, {false_alarms}/100 non-faces")
    assert faces_found >= 95, f"only {faces_found}/100 LFW faces detected"
    assert false_alarms <= 2, f"{false_alarms}/100 non-faces taken for faces"


def test_photo_without_a_face_is_rejected_no_face(detector):
    with pytest.raises(imlib.ImageRejected) as e:
        faces.crop_image(data.coffee(), faces.CropConfig(mode=faces.ALIGN), detector)
    assert e.value.reason == faces.NO_FACE


def test_small_face_is_rejected_below_min_face_size(detector):
    face = np.dstack([(data.lfw_subset()[0] * 255).round().astype(np.uint8)] * 3)  # the face box is ~20 px
    with pytest.raises(imlib.ImageRejected) as e:
        faces.crop_image(face, faces.CropConfig(mode=faces.ALIGN, size=32, min_face_size=32), detector)
    assert e.value.reason == faces.FACE_TOO_SMALL
    crop = faces.crop_image(face, faces.CropConfig(mode=faces.ALIGN, size=32, min_face_size=0), detector)
    assert crop.shape == (32, 32, 3)


def test_largest_face_is_chosen_by_default_and_central_on_request(detector, astronaut):
    head = astronaut[20:260, 120:330]  # 240×210, the face in the middle
    canvas = np.full((420, 900, 3), 90, np.uint8)
    canvas[10:250, 20:230] = head  # full size, top-left
    small = imlib.resize(head, (120, 105))
    canvas[150:270, 400:505] = small  # half size, at the centre
    found = detector.detect([canvas])[0]
    assert len(found) == 2, f"expected both faces, found {len(found)}"
    largest = faces.choose_face(found, "largest", canvas.shape)
    central = faces.choose_face(found, "central", canvas.shape)
    assert largest.center[0] < 230 and 400 < central.center[0] < 505
    config = faces.CropConfig(mode=faces.ALIGN, size=64, min_face_size=0)
    np.testing.assert_array_equal(faces.crop_image(canvas, config, detector),
                                  faces.align_face(canvas, largest.landmarks, 64))


def test_batched_detection_gives_the_same_crops_as_one_by_one(detector, astronaut):
    images = [astronaut, _rotate(astronaut, 20, 0.7), data.coffee()]
    config = faces.CropConfig(mode=faces.ALIGN, size=48)
    batched = faces.crop_images(images, config, detector)
    single = faces.crop_images([images[0]], config, detector) + faces.crop_images([images[1]], config, detector)
    for a, b in zip(batched[:2], single, strict=True):
        assert np.abs(a.astype(int) - b).max() <= 1
    assert isinstance(batched[2], imlib.ImageRejected) and batched[2].reason == faces.NO_FACE


def test_detector_is_loaded_once_per_process():
    assert faces.get_detector(256) is faces.get_detector(256)
