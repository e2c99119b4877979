"""The studio's configuration (one dataclass, validated once at the edge) and the request limits it enforces.
Light: standard library only, so the CLI can build it without importing TensorFlow."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"  # model names and version labels


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask for (each is a clear 400 when exceeded)."""

    max_faces: int = 64           # generate n / images rows
    max_seed: int = 2**53 - 1     # seeds must survive JavaScript numbers
    max_steps: int = 32           # interpolation frames
    max_group: int = 16           # faces per arithmetic group, per custom-direction side
    max_variations: int = 8       # arithmetic: noisy variations of the result (the paper shows 8)
    max_moves: int = 16           # directions combined in one move
    max_amount: float = 10.0      # |amount| along a unit direction
    max_abs_z: float = 100.0      # |z_i|; z ~ N(0, 1), so anything near this is already far off the prior
    max_body_bytes: int = 1 << 20  # request body (413 above)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StudioConfig:
    server: str = "127.0.0.1:8500"          # gRPC address of the model server (TF Serving or `dcgan serve`)
    model: str = "dcgan"                    # default model name (the page can ask for another)
    label: str | None = None                # default version label (None: the latest version)
    host: str = "127.0.0.1"                 # address the studio binds
    port: int = 8080
    model_base_path: str | None = None      # the model's version folders: <it>/<version>/assets.extra/directions.json
    directions_file: str | None = None      # or one directions.json for every version
    timeout_s: float = 30.0                 # deadline of one model-server call
    cache_faces: int = 4096                 # rendered faces kept (LRU), keyed by (model, version, z or seed)
    resolve_ttl_s: float = 2.0              # how long a label → version answer is reused
    batch_window_ms: float = 3.0            # concurrent z → image requests within this window share one Predict
    batch_max_rows: int = 256
    labels: tuple[str, ...] = ("stable", "canary")  # offered on the page (any label may be requested)
    canary_share: float = 0.0               # share of requests naming no label/version sent to `canary` (0..1)
    limits: Limits = field(default_factory=Limits)

    def validate(self) -> StudioConfig:
        if not re.match(r"^[^\s:]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$|^(dns|unix|ipv4|ipv6):", self.server):
            raise ValueError(f"--server must be HOST:PORT (the model server's gRPC address), got {self.server!r}")
        if not re.match(NAME_PATTERN, self.model):
            raise ValueError(f"--model {self.model!r} is not a valid model name")
        if self.label is not None and not re.match(NAME_PATTERN, self.label):
            raise ValueError(f"--label {self.label!r} is not a valid version label")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port {self.port} is outside 0..65535")
        if self.model_base_path is not None and not os.path.isdir(self.model_base_path):
            raise ValueError(f"--model-base-path {self.model_base_path!r} is not a directory")
        if self.directions_file is not None and not os.path.isfile(self.directions_file):
            raise ValueError(f"--directions {self.directions_file!r} is not a file")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"--timeout must be a positive number of seconds, got {self.timeout_s}")
        if not (math.isfinite(self.resolve_ttl_s) and self.resolve_ttl_s >= 0):
            raise ValueError(f"resolve_ttl_s must be a finite number >= 0, got {self.resolve_ttl_s}")
        if not (math.isfinite(self.batch_window_ms) and self.batch_window_ms >= 0):
            raise ValueError(f"batch_window_ms must be a finite number >= 0, got {self.batch_window_ms}")
        if self.cache_faces < 0:
            raise ValueError(f"--cache-faces must be >= 0, got {self.cache_faces}")
        if not (math.isfinite(self.canary_share) and 0.0 <= self.canary_share <= 1.0):
            raise ValueError(f"--canary-share must be within 0..1 (a share of the unlabelled requests), got "
                             f"{self.canary_share}")
        if self.batch_max_rows < 1:
            raise ValueError(f"batch_max_rows must be >= 1, got {self.batch_max_rows}")
        return self
