"""Run configuration: one object describes a training run, is validated once at the edge and saved with the run.

`ModelConfig` fixes the architecture (what an exported generator needs to be rebuilt); `TrainConfig` holds
everything else a run needs. Both are plain dataclasses that round-trip through JSON (`config.json` in a run dir).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from dcgan.errors import DcganError
from dcgan.fileio import write_json_atomic

SUPPORTED_SIZES = (32, 64, 128)
SUPPORTED_KERNELS = (4, 5)
SUPPORTED_CHANNELS = (1, 3)
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker_mirrored")
CROPS = ("center", "none")
INPUT_MODES = ("auto", "memory", "stream")
DIFFAUGMENT_POLICIES = ("color", "translation", "cutout")  # dcgan.augment


class ConfigError(DcganError, ValueError):
    """An invalid configuration value; the message names the field and what is allowed."""


def parse_policy(policy: str) -> tuple[str, ...]:
    """"color,translation" → ("color", "translation"); "" → (). Raises ValueError naming an unknown or repeated part."""
    parts = tuple(p.strip() for p in policy.split(",") if p.strip()) if policy else ()
    unknown = [p for p in parts if p not in DIFFAUGMENT_POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment polic{'ies' if len(unknown) > 1 else 'y'} {unknown}: "
                         f"use a comma-separated subset of {DIFFAUGMENT_POLICIES}, or '' for none")
    if len(set(parts)) != len(parts):
        raise ValueError(f"DiffAugment policy {policy!r} names a transform twice")
    return parts


@dataclass(frozen=True)
class ModelConfig:
    """The DCGAN architecture (Radford et al. 2015).

    G maps z ∈ R^z_dim to a 4×4×(ngf·2^(n−1)) map, then n fractional-strided convolutions double the size up to
    `size` (n = log2(size/4)). D mirrors it with strided convolutions down to 4×4×(ndf·2^(n−1)). With size=64,
    ngf=64 G starts at 4×4×512 (the common pytorch/examples variant); ngf=128 gives the paper's 4×4×1024.
    """

    size: int = 64
    z_dim: int = 100
    ngf: int = 64
    ndf: int = 64
    kernel_size: int = 4
    channels: int = 3

    @property
    def num_upsamplings(self) -> int:
        return int(math.log2(self.size // 4))

    @property
    def base_width(self) -> int:
        """Channels of G's first 4×4 feature map."""
        return self.ngf * 2 ** (self.num_upsamplings - 1)

    def validate(self) -> ModelConfig:
        if self.size not in SUPPORTED_SIZES:
            raise ConfigError(f"size={self.size} is not supported; choose one of {SUPPORTED_SIZES}")
        if self.z_dim <= 0:
            raise ConfigError(f"z_dim={self.z_dim} must be a positive integer")
        for name in ("ngf", "ndf"):
            value = getattr(self, name)
            if value <= 0:
                raise ConfigError(f"{name}={value} must be a positive integer")
        if self.kernel_size not in SUPPORTED_KERNELS:
            raise ConfigError(f"kernel_size={self.kernel_size} is not supported; choose one of {SUPPORTED_KERNELS}")
        if self.channels not in SUPPORTED_CHANNELS:
            raise ConfigError(f"channels={self.channels} is not supported; choose one of {SUPPORTED_CHANNELS}")
        return self


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the architecture. Paper defaults where the paper gives one."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = ""  # a folder of images, a TFRecord file/glob/folder, or a list of them separated by ','
    steps: int = 1000
    batch_size: int = 128  # the paper's mini-batch size
    learning_rate: float = 2e-4  # G's and D's (the paper); D's own with d_learning_rate
    d_learning_rate: float = 0.0  # TTUR (Heusel et al. 2017): D's learning rate apart from G's; 0 = learning_rate
    beta1: float = 0.5
    diffaugment: str = ""  # DiffAugment (Zhao et al. 2020) policy before D, e.g. "color,translation,cutout"; "" = off
    label_smoothing: float = 0.0  # one-sided (real labels become 1 - s); 0 = the paper
    ema_decay: float = 0.0  # 0 = no EMA copy of G; e.g. 0.999 keeps one for sampling and export
    random_flip: bool = True
    crop: str = "center"  # for image folders: center square crop, then resize (carpedm20's --crop)
    input_mode: str = "auto"  # memory: decode once and keep uint8 in RAM; stream: decode on the fly
    memory_limit_mb: int = 2048  # auto picks `memory` when the decoded set fits in this
    precision: str = "float32"
    strategy: str = "auto"
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    num_samples: int = 64  # fixed-z sample grid size
    fid_every: int = 0  # 0 = off; else log a small-N FID to TensorBoard every K steps (needs the metrics hook)
    fid_samples: int = 500
    intra_op_threads: int = 0  # 0 = TensorFlow's default (all cores)
    inter_op_threads: int = 0

    @property
    def discriminator_learning_rate(self) -> float:
        """D's learning rate: `d_learning_rate` when set (TTUR), else the shared `learning_rate`."""
        return self.d_learning_rate or self.learning_rate

    def validate(self) -> TrainConfig:
        self.model.validate()
        if not self.data:
            raise ConfigError("data is empty: pass --data with a folder of images or TFRecord files")
        positive = ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints",
                    "num_samples")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        if not 0 < self.learning_rate < 1:
            raise ConfigError(f"learning_rate={self.learning_rate} must be in (0, 1)")
        if not (self.d_learning_rate == 0 or 0 < self.d_learning_rate < 1):
            raise ConfigError(f"d_learning_rate={self.d_learning_rate} must be 0 (= learning_rate) or in (0, 1)")
        try:
            parse_policy(self.diffaugment)
        except ValueError as e:
            raise ConfigError(f"diffaugment={self.diffaugment!r}: {e}") from e
        if not 0 <= self.beta1 < 1:
            raise ConfigError(f"beta1={self.beta1} must be in [0, 1)")
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"label_smoothing={self.label_smoothing} must be in [0, 0.5)")
        if not (self.ema_decay == 0 or 0.5 <= self.ema_decay < 1):
            raise ConfigError(f"ema_decay={self.ema_decay} must be 0 (off) or in [0.5, 1)")
        for name, allowed in (("precision", PRECISIONS), ("strategy", STRATEGIES), ("crop", CROPS),
                              ("input_mode", INPUT_MODES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not one of {allowed}")
        if self.fid_every < 0 or self.fid_samples <= 0:
            raise ConfigError("fid_every must be >= 0 and fid_samples > 0")
        return self

    # -- JSON round trip ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        model = ModelConfig(**_known_fields(ModelConfig, d.pop("model", {})))
        return cls(model=model, **_known_fields(cls, d))

    def replace(self, **changes: Any) -> TrainConfig:
        model_changes = {k: changes.pop(k) for k in list(changes) if k in _field_names(ModelConfig)}
        model = dataclasses.replace(self.model, **model_changes) if model_changes else self.model
        return dataclasses.replace(self, model=model, **changes)


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _known_fields(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    unknown = set(d) - _field_names(cls)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {sorted(unknown)}")
    return d


def save_config(config: TrainConfig, path: str) -> None:
    """Write the config as JSON atomically."""
    write_json_atomic(path, config.to_dict(), indent=2, sort_keys=True)


def load_config(path: str) -> TrainConfig:
    from dcgan import fileio

    with fileio.open_file(path) as f:
        return TrainConfig.from_dict(json.load(f))
