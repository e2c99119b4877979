"""Face detection (MTCNN) and 5-landmark alignment: turns a photo into a centred, upright face crop.

Three crop modes, one per kind of input:

* `align` — real photos. MTCNN finds faces and five landmarks (eyes, nose, mouth corners); one face is chosen
  (the largest by default); a similarity transform (rotation, uniform scale, translation; Umeyama's least squares)
  maps its landmarks onto a canonical template; the warped crop, with `margin` around the template, is resized to
  the output size. Photos without a face are rejected with reason `no_face`.
* `center-crop` — pre-aligned sets such as CelebA's img_align_celeba: the central `crop_size` square (carpedm20's
  `--crop`; the largest central square when unset), resized.
* `none` — images that are already square crops: resized only.

The detector is loaded lazily, once per process (`get_detector`), from the weights the `mtcnn` package ships; its
three networks run as `tf.function`s on a fixed-size detection canvas, so any photos share one trace; each photo gets
its own pass (`FaceDetector.detect`), so its crop does not depend on what it was batched with.
"""

from __future__ import annotations

import atexit
import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from dcgan import images as imlib

ALIGN = "align"
CENTER_CROP = "center-crop"
NONE = "none"
MODES = (ALIGN, CENTER_CROP, NONE)

# Reason codes of this module (the ingest report groups rejects by these and by dcgan.images.REASONS).
NO_FACE = "no_face"  # align mode: no face found with enough confidence
FACE_TOO_SMALL = "face_too_small"  # align mode: the chosen face is below min_face_size pixels in the source
REASONS = (NO_FACE, FACE_TOO_SMALL)

FACE_POLICIES = ("largest", "confident", "central")

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # "left" = on the image's left
# The canonical 5-point template of face recognition (InsightFace/ArcFace, a 112×112 crop), in unit coordinates.
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                     [70.7299, 92.2041]]) / 112.0
DEFAULT_MARGIN = 0.15  # crop = the template's square grown by 15% on each side: whole face, chin and some hair


@dataclass(frozen=True)
class CropConfig:
    """How a decoded image becomes a size×size training image (see the module docstring for the modes).

    margin: align mode, extra border around the template square, as a fraction of its side on each side.
    crop_size: center-crop mode, side of the central square (None: the largest central square).
    face: which face when several: `largest` (box area), `confident` (detector score), `central` (nearest the
      image centre).
    min_confidence: faces scored below this by MTCNN are ignored.
    min_face_size: align mode, faces whose box is smaller than this many source pixels are rejected
      (`face_too_small`); upscaling tiny faces makes blurry training images. 0 = off.
    detect_size: side of the square canvas the detector sees: each photo is scaled to fit its central 3/4.
      Faces smaller than ~10% of a photo's longer side are missed at 256; raise it for group photos (slower).
    """

    mode: str = CENTER_CROP
    size: int = 64
    crop_size: int | None = None
    margin: float = DEFAULT_MARGIN
    face: str = "largest"
    min_confidence: float = 0.9
    min_face_size: int = 32
    detect_size: int = 256

    def validate(self) -> CropConfig:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is not one of {MODES}")
        if not isinstance(self.size, int) or self.size < 8:
            raise ValueError(f"size={self.size!r} must be an integer >= 8")
        if self.crop_size is not None and self.crop_size < 8:
            raise ValueError(f"crop_size={self.crop_size!r} must be >= 8 (or None for the largest central square)")
        if not 0 <= self.margin <= 1:
            raise ValueError(f"margin={self.margin} must be in [0, 1]")
        if self.face not in FACE_POLICIES:
            raise ValueError(f"face={self.face!r} is not one of {FACE_POLICIES}")
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(f"min_confidence={self.min_confidence} must be in [0, 1]")
        if self.min_face_size < 0:
            raise ValueError(f"min_face_size={self.min_face_size} must be >= 0")
        if self.detect_size < 64:
            raise ValueError(f"detect_size={self.detect_size} must be >= 64")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Face:
    """One detected face in source-image pixels."""

    box: tuple[float, float, float, float]  # x, y, width, height
    confidence: float
    landmarks: np.ndarray  # 5×2 (x, y) in LANDMARK_NAMES order

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def side(self) -> float:
        return max(self.box[2], self.box[3])

    @property
    def center(self) -> tuple[float, float]:
        return self.box[0] + self.box[2] / 2, self.box[1] + self.box[3] / 2

    @property
    def roll(self) -> float:
        """Angle of the eye line (left eye → right eye) in degrees: 0 = level, + = clockwise in image coordinates
        (y down: the right eye lower than the left)."""
        (lx, ly), (rx, ry) = self.landmarks[0], self.landmarks[1]
        return math.degrees(math.atan2(ry - ly, rx - lx))


def face_features(face: Face, image_shape: tuple[int, ...], margin: float) -> dict[str, float]:
    """The `face/*` features of the example schema (`dcgan.schema`) of the chosen face, by name: the detector's
    confidence, size (box's longer side / the source's shorter side), roll (degrees) and the crop's margin."""
    return {"confidence": float(face.confidence), "size": float(face.side / min(image_shape[:2])),
            "roll": float(face.roll), "margin": float(margin)}


# -- geometry -------------------------------------------------------------------------------------------------------
def template_points(size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The 5 canonical landmark positions in a size×size crop with `margin` (pixel coordinates, 5×2)."""
    return (TEMPLATE + margin) / (1.0 + 2.0 * margin) * size


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, translation; no reflection) that maps `src` points onto `dst`
    with the least squared error (Umeyama 1991)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    var_src = (src_c ** 2).sum() / len(src)
    scale = (s * d).sum() / var_src if var_src > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """Warp `image` so that the 5 `landmarks` land on the template of a size×size crop; returns uint8 size×size×3.

    Large downscales are done in two steps (warp to an integer multiple of `size`, then an antialiased resize), so
    a face from a 24-megapixel photo does not alias. Pixels outside the photo are mirrored from the inside.
    """
    import cv2

    matrix = similarity_transform(landmarks, template_points(size, margin))
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    factor = int(min(4, max(1, math.floor(1.0 / scale)))) if scale > 0 else 1
    out = cv2.warpAffine(np.ascontiguousarray(image), matrix * factor, (size * factor, size * factor),
                         flags=cv2.INTER_LINEAR if factor > 1 or scale < 1 else cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REFLECT_101)
    return imlib.resize(out, size) if factor > 1 else out


def choose_face(faces: Sequence[Face], policy: str, image_shape: tuple[int, ...]) -> Face:
    """Pick one face: `largest` box, most `confident`, or the `central` one (ties keep detection order)."""
    if policy == "largest":
        return max(faces, key=lambda f: f.area)
    if policy == "confident":
        return max(faces, key=lambda f: f.confidence)
    if policy == "central":
        cy, cx = image_shape[0] / 2, image_shape[1] / 2
        return min(faces, key=lambda f: (f.center[0] - cx) ** 2 + (f.center[1] - cy) ** 2)
    raise ValueError(f"face policy {policy!r} is not one of {FACE_POLICIES}")


# -- detection ------------------------------------------------------------------------------------------------------
class FaceDetector:
    """MTCNN on a fixed square canvas. Stateless once built, so threads may share it; get the per-process instance
    with `get_detector`."""

    CANVAS_FILL = 0.75  # the photo fills the central 3/4 of the canvas; the border helps faces at the edges

    def __init__(self, detect_size: int = 256):
        import tensorflow as tf
        from mtcnn import MTCNN

        self.detect_size = detect_size
        self._mtcnn = MTCNN(device="CPU:0")
        # Keras eager calls dominate MTCNN's run time on small inputs; tf.functions with shape-free signatures
        # trace once and run 3-5× faster.
        specs = [tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([None, 24, 24, 3], tf.float32),
                 tf.TensorSpec([None, 48, 48, 3], tf.float32)]
        for stage, spec in zip(self._mtcnn.stages, specs, strict=True):
            model = stage._model
            stage._model = tf.function(lambda x, model=model: model(x), input_signature=[spec])

    def _to_canvas(self, image: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        import cv2

        h, w = image.shape[:2]
        d = self.detect_size
        scale = d * self.CANVAS_FILL / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        small = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=interpolation)
        top, left = (d - nh) // 2, (d - nw) // 2
        canvas = cv2.copyMakeBorder(small, top, d - nh - top, left, d - nw - left, cv2.BORDER_REPLICATE)
        return canvas, scale, left, top

    def detect(self, images: Sequence[np.ndarray], min_confidence: float = 0.0) -> list[list[Face]]:
        """Faces (source-pixel coordinates) in each of `images` (H×W×3 uint8), one MTCNN pass per image.

        Per image, not one batched pass: a batched pass gives landmarks that differ in their last bits (~1e-4 px,
        with oneDNN's kernels or Eigen's) with the other images of the batch and their number of candidate faces,
        and a crop's bytes decide its duplicates, split and shard (components/ingest). One image's crop must depend
        on that image alone, whichever runner batched it with whichever others. Costs ~2x the batched detector time
        (the canvas is fixed, so every pass reuses one trace)."""
        return [self._detect_one(image, min_confidence) for image in images]

    def _detect_one(self, image: np.ndarray, min_confidence: float) -> list[Face]:
        canvas, scale, left, top = self._to_canvas(image)
        # numpy output keeps sub-pixel landmarks (the JSON output rounds them to integers). Rows: image index,
        # x1, y1, x2, y2, confidence, the 5 landmarks' x, then their y (LANDMARK_NAMES order).
        rows = np.asarray(self._mtcnn.detect_faces([canvas.astype(np.float32)], min_face_size=20, box_format="xyxy",
                                                   output_type="numpy"), np.float64).reshape(-1, 16)
        faces: list[Face] = []
        for row in rows:
            if row[5] < min_confidence:
                continue
            x1, y1, x2, y2 = (row[1] - left) / scale, (row[2] - top) / scale, (row[3] - left) / scale, \
                (row[4] - top) / scale
            points = (np.stack([row[6:11], row[11:16]], axis=1) - [left, top]) / scale
            faces.append(Face((x1, y1, x2 - x1, y2 - y1), float(row[5]), points))
        return faces


_detectors: dict[int, FaceDetector] = {}
_detector_lock = threading.Lock()


def configure_threads(threads: int) -> None:
    """Limit TensorFlow and OpenCV to `threads` threads in this process (call before the first TF op; later calls
    cannot change TF's pools and are ignored). Several ingest workers on one machine should split the cores."""
    import cv2

    from dcgan.runtime import configure_tf_threads

    cv2.setNumThreads(max(1, threads))
    configure_tf_threads(threads, min(threads, 2))  # a no-op once TF is initialised in this process


def get_detector(detect_size: int = 256) -> FaceDetector:
    """The process-wide detector for `detect_size` (loaded on first use; the weights ship with `mtcnn`)."""
    with _detector_lock:
        detector = _detectors.get(detect_size)
        if detector is None:
            if not _detectors:  # drop the tf.functions before interpreter shutdown (TF logs errors otherwise)
                atexit.register(_detectors.clear)
            detector = _detectors[detect_size] = FaceDetector(detect_size)
        return detector


# -- one image → one training crop ------------------------------------------------------------------------------------
def crop_with_face(image: np.ndarray, faces: Sequence[Face], config: CropConfig) -> np.ndarray:
    """Align mode, given the faces found in `image`: choose one, check its size, warp it to the template."""
    crop, _ = _crop_chosen_face(image, faces, config)
    if isinstance(crop, imlib.ImageRejected):
        raise crop
    return crop


def _crop_chosen_face(image: np.ndarray, faces: Sequence[Face],
                      config: CropConfig) -> tuple[np.ndarray | imlib.ImageRejected, Face | None]:
    """`crop_with_face` without raising: (crop or its ImageRejected, the chosen face or None when there is none)."""
    if not faces:
        return imlib.ImageRejected(NO_FACE, f"no face with confidence >= {config.min_confidence}"), None
    face = choose_face(faces, config.face, image.shape)
    if face.side < config.min_face_size:
        return imlib.ImageRejected(FACE_TOO_SMALL,
                                   f"face of {face.side:.1f} px < min_face_size {config.min_face_size}"), face
    return align_face(image, face.landmarks, config.size, config.margin), face


def crop_image(image: np.ndarray, config: CropConfig, detector: FaceDetector | None = None) -> np.ndarray:
    """A decoded H×W×3 uint8 image → the size×size×3 uint8 training crop of `config.mode`. Raises ImageRejected."""
    result = crop_images([image], config, detector)[0]
    if isinstance(result, imlib.ImageRejected):
        raise result
    return result


def crop_images(images: Sequence[np.ndarray], config: CropConfig,
                detector: FaceDetector | None = None) -> list[np.ndarray | imlib.ImageRejected]:
    """Batch form of `crop_image` (align mode: one detector pass per image, see `FaceDetector.detect`); a rejected
    image yields its ImageRejected in place of a crop (and raises nothing)."""
    return [crop for crop, _ in crop_images_with_faces(images, config, detector)]


def crop_images_with_faces(images: Sequence[np.ndarray], config: CropConfig, detector: FaceDetector | None = None,
                           ) -> list[tuple[np.ndarray | imlib.ImageRejected, Face | None]]:
    """`crop_images`, each crop (or ImageRejected) with the face it was made from: align mode, the chosen face (also
    for a `face_too_small` reject); None in the other modes and when no face was found."""
    if config.mode == CENTER_CROP:
        return [(imlib.resize(imlib.center_crop(im, config.crop_size), config.size), None) for im in images]
    if config.mode == NONE:
        return [(imlib.resize(im, config.size), None) for im in images]
    detector = detector or get_detector(config.detect_size)
    found = detector.detect(images, config.min_confidence)
    return [_crop_chosen_face(image, faces, config) for image, faces in zip(images, found, strict=True)]
