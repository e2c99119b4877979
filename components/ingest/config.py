"""`IngestConfig`: the settings of one ingest run, validated once (light module: no Beam, no TensorFlow)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dcgan import faces
from dcgan import images as imlib


class IngestError(ValueError):
    """The ingest cannot start (bad source, bad settings, output in the way); the message says why."""


@dataclass(frozen=True)
class IngestSettings:
    """How images become examples: every ingest setting but what to read and the output size. The pipeline's
    `ingest` section is this class; the TFX component's parameters are generated from `IngestConfig`.

    mode: `align` (MTCNN + 5-landmark alignment, for real photos), `center-crop` (pre-aligned sets such as
      CelebA's img_align_celeba) or `none` (already square: resize only). Avatars are rendered framed; mode is
      ignored for them.
    crop_size: center-crop mode, the central square's side before resizing (carpedm20: 108 for CelebA); None =
      the largest central square.
    margin, face, min_confidence, min_face_size, detect_size: align mode (see `dcgan.faces.CropConfig`).
    eval_ratio: fraction of examples in the eval split (by content hash, so stable).
    seed: salts the split hash and picks the avatar set.
    max_pixels: inputs with more pixels are rejected from their header (`too_large`), before decoding.
    attributes_file: a CelebA-format attribute file; None = look for list_attr_celeba.txt; "" = none.
    records_per_shard: target examples per TFRecord file.
    preview_count: images in the report's preview grid.
    detection_batch: images per MTCNN call (align mode).
    worker_threads: TensorFlow/OpenCV threads per worker process; 0 = the cores divided by the local workers.
    """

    mode: str = faces.CENTER_CROP
    crop_size: int | None = None
    margin: float = faces.DEFAULT_MARGIN
    face: str = "largest"
    min_confidence: float = 0.9
    min_face_size: int = 32
    detect_size: int = 256
    eval_ratio: float = 0.1
    seed: int = 0
    max_pixels: int = imlib.DEFAULT_MAX_PIXELS
    attributes_file: str | None = None
    records_per_shard: int = 10_000
    preview_count: int = 64
    detection_batch: int = 16
    worker_threads: int = 0


@dataclass(frozen=True)
class IngestConfig(IngestSettings):
    """Everything one ingest run depends on (the TFX component's parameters are these fields): the settings above,
    plus

    source: a folder, a .zip (CelebA layout), a glob, one image file, or `avatars:N[:SEED]` (`sources` module).
    size: output side in pixels (the examples are size×size×3 PNGs).
    """

    source: str = ""
    size: int = 64

    def crop_config(self) -> faces.CropConfig:
        return faces.CropConfig(mode=self.mode, size=self.size, crop_size=self.crop_size, margin=self.margin,
                                face=self.face, min_confidence=self.min_confidence,
                                min_face_size=self.min_face_size, detect_size=self.detect_size)

    def validate(self) -> IngestConfig:
        if not self.source:
            raise IngestError("source is empty: name a folder, a .zip, a glob, an image or avatars:N[:SEED]")
        try:
            self.crop_config().validate()
        except ValueError as e:
            raise IngestError(str(e)) from e
        if not 0 <= self.eval_ratio < 1:
            raise IngestError(f"eval_ratio={self.eval_ratio} must be in [0, 1)")
        if self.max_pixels <= 0:
            raise IngestError(f"max_pixels={self.max_pixels} must be positive")
        for name in ("records_per_shard", "detection_batch"):
            if getattr(self, name) <= 0:
                raise IngestError(f"{name}={getattr(self, name)} must be positive")
        if self.preview_count < 0 or self.worker_threads < 0 or self.seed < 0:
            raise IngestError("preview_count, worker_threads and seed must be >= 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
