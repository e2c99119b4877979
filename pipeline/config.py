"""The pipeline's one typed configuration, with presets, validated once at the edge (light: no TFX import).

`PipelineConfig` nests the trainer's own `TrainConfig` (dcgan.config) so the pipeline and `dcgan train` mean the
same thing by every training value. Every value can be overridden from the CLI with `--set section.field=value`
(e.g. `--set train.steps=500 --set evaluation.fid_threshold=150`), plus a few direct flags (`--data`, `--root`).

Presets:
  * smoke — CI: 160 avatars at 32×32, a very narrow DCGAN, a few dozen steps, FID at N=64 with a lenient gate.
  * quick — the README demo (≤ 15 min on 2 CPU cores, AVX2-only ones included, evaluation included): 4,000 avatars
            at 32×32, the paper's recipe (ngf=64, Adam β1 0.5) with a narrower D (ndf=48), batch 32, EMA 0.999,
            DiffAugment (colour, translation) and G learning at 4e-4, D at 2e-4; FID at N=1,000 with a gate that
            passes a trained model and refuses an untrained one.
  * standard — the seed's size on CPU (≤ 45 min on 2 cores, evaluation included): 4,000 avatars at 64×64, the
            paper's architecture at pytorch/examples' widths (ngf=ndf=64: G starts at 4×4×512), batch 64, quick's
            DiffAugment and learning rates, EMA 0.999, FID at N=1,000.
  * full  — GPU-sized: CelebA-scale data (`--data` required), 64×64 at the paper's widths (4×4×1024, 5×5 kernels),
            batch 128, mixed precision, MirroredStrategy over all GPUs, FID at N=10,000.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from typing import Any

from components.ingest.config import IngestConfig, IngestError, IngestSettings
from dcgan import fileio
from dcgan.cli_args import is_settable, parse_value, type_name
from dcgan.config import ConfigError, ModelConfig, TrainConfig
from dcgan.directions import DirectionsConfig
from dcgan.metrics.config import EvaluationConfig

PRESETS = ("smoke", "quick", "standard", "full")
BEAM_RUNNERS = ("direct", "multiprocess", "dask")
INGEST_MODES = ("align", "center-crop", "none")
# The curated schema of the built-in avatars (its header: the statistics its ranges and thresholds come from).
AVATARS_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemas", "avatars.pbtxt")


@dataclass(frozen=True)
class EvaluationSettings(EvaluationConfig):
    """The FidEvaluator's settings: every `dcgan.metrics.config.EvaluationConfig` field (None = off, as everywhere),
    plus whether the pipeline compares with the last blessed model at all."""

    regression_check: bool = True  # compare with the last blessed model when there is one

    def component_args(self) -> dict[str, Any]:
        """FidEvaluator's settings: the EvaluationConfig fields (no regression rule without the check)."""
        args = {f.name: getattr(self, f.name) for f in dataclasses.fields(EvaluationConfig)}
        if not self.regression_check:
            args["max_fid_regression"] = None
        return args

    def reference_stats_config(self) -> dict[str, Any]:
        """The Trainer's custom_config["reference_stats"]: FID reference statistics of the same eval images (subset,
        seed) stored with the model, and the gate's regression margin for the canary analysis
        (serving/rollout/canary.py)."""
        return {"num_real": self.num_real, "seed": self.seed, "max_fid_regression": self.max_fid_regression}


@dataclass(frozen=True)
class DirectionsSettings(DirectionsConfig):
    """Attribute directions in z, computed by the Trainer right after the export (dcgan.directions) when the data
    has attribute labels, and stored with the model (assets.extra/directions.json) for the studio's sliders: every
    `dcgan.directions.DirectionsConfig` field, plus whether to compute them at all."""

    enabled: bool = True

    def custom_config(self) -> bool | dict[str, Any]:
        """The Trainer's custom_config["directions"]: False, or the DirectionsConfig fields (JSON)."""
        if not self.enabled:
            return False
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(DirectionsConfig)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DirectionsSettings:
        d = dict(d)
        if "amounts" in d:
            d["amounts"] = tuple(float(a) for a in d["amounts"])
        return cls(**d)


@dataclass(frozen=True)
class BeamSettings:
    """Where the Beam parts (ingest) run: DirectRunner in-process or multi-process, or a Dask cluster."""

    runner: str = "direct"
    workers: int = 2  # multiprocess: worker processes (0 = one per core of the machine that runs the step)
    dask_address: str = ""  # dask: scheduler address; "" = start a local cluster
    extra_args: str = ""  # more beam_pipeline_args, space-separated (e.g. for Dataflow/Flink/Spark)


@dataclass(frozen=True)
class ValidationSettings:
    """Data validation before training (components/validation, docs/data.md): StatisticsGen, the schema and the
    ExampleValidator, whose anomalies stop the run at the Trainer."""

    enabled: bool = True
    # "" = the rule: pipeline/schemas/avatars.pbtxt for avatars:... sources, else <root>/schema.pbtxt (imported when
    # it exists, inferred and written there on the first run); else the path of a schema.pbtxt to import.
    schema: str = ""

    def validate(self) -> ValidationSettings:
        if self.schema and not fileio.is_remote(self.schema) and not os.path.isfile(self.schema):
            raise ConfigError(f"validation.schema={self.schema!r}: no such file (a schema.pbtxt to import; \"\" = "
                              "the curated schema of the built-in avatars, or <root>/schema.pbtxt)")
        return self


@dataclass(frozen=True)
class PipelineConfig:
    name: str = "dcgan-faces"
    preset: str = "quick"
    root: str = "runs/pipeline"  # pipeline root: artifacts and metadata.sqlite live under it
    data: str = "avatars:4000:0"  # FaceExampleGen source: folder, zip, glob or avatars:N:SEED
    serving_root: str = ""  # "" = <root>/serving; Pusher writes <serving_root>/<model_name>/<version>/
    # The serving store's TF Serving model config (models.config), if any: where the Kubeflow Pipelines target's FID
    # gate finds the version labelled `stable` to compare with ("" = the newest pushed version).
    serving_model_config: str = ""
    model_name: str = "dcgan"
    enable_cache: bool = True
    infra_check: bool = True
    infra_timeout_seconds: int = 180
    kubeflow_image: str = "ghcr.io/dcgan-faces/pipeline:0.1.0"
    # Retries of the Trainer task in the compiled Kubeflow / Vertex spec (its retryPolicy): a preempted or evicted
    # Trainer pod fails its attempt after checkpointing, and the retry resumes the parked run from that checkpoint.
    kubeflow_trainer_retries: int = 2
    # Seconds before the first retry (then doubling, up to 5 minutes): time for a preempted node to be replaced.
    kubeflow_trainer_retry_backoff_seconds: int = 30
    ingest: IngestSettings = field(default_factory=IngestSettings)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(data="<from ingest>"))
    # The pipeline's own defaults: a candidate must not be worse than the last blessed model at all.
    evaluation: EvaluationSettings = field(
        default_factory=lambda: EvaluationSettings(max_fid_regression=0.0, memorization_reference=2000))
    directions: DirectionsSettings = field(default_factory=DirectionsSettings)
    beam: BeamSettings = field(default_factory=BeamSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)

    # -- derived ----------------------------------------------------------------------------------------------------
    @property
    def metadata_path(self) -> str:
        """<root>/metadata.sqlite; SQLite needs a local file, so a gs:// or s3:// root keeps its MLMD store in the
        local cache (dcgan.fileio.local_cache_path: ~/.cache/dcgan/s3/bucket/.../metadata.sqlite)."""
        if fileio.is_remote(self.root):
            return os.path.join(fileio.local_cache_path(self.root), "metadata.sqlite")
        return os.path.join(self.root, "metadata.sqlite")

    @property
    def pipeline_root(self) -> str:
        return fileio.join(self.root, "artifacts")

    @property
    def push_base(self) -> str:
        return fileio.join(self.serving_root or fileio.join(self.root, "serving"), self.model_name)

    @property
    def schema_path(self) -> str:
        """The schema file the data is validated with: `validation.schema` when set, else the curated
        pipeline/schemas/avatars.pbtxt for an avatars:... source, else <root>/schema.pbtxt (imported when it
        exists; otherwise the first run infers it and writes it there)."""
        if self.validation.schema:
            return self.validation.schema
        if self.data.startswith("avatars:"):
            return AVATARS_SCHEMA
        return fileio.join(self.root, "schema.pbtxt")

    def beam_pipeline_args(self) -> list[str]:
        b = self.beam
        if b.runner == "direct":
            args = ["--runner=DirectRunner", "--direct_num_workers=1"]
        elif b.runner == "multiprocess":
            args = ["--runner=DirectRunner", f"--direct_num_workers={b.workers}",
                    "--direct_running_mode=multi_processing"]
        else:
            args = ["--runner=apache_beam.runners.dask.dask_runner.DaskRunner"]
            if b.dask_address:
                args.append(f"--dask_client_address={b.dask_address}")
        return args + b.extra_args.split()

    # -- validation and (de)serialisation ----------------------------------------------------------------------
    def validate(self) -> PipelineConfig:
        if self.preset not in PRESETS:
            raise ConfigError(f"preset={self.preset!r} is not one of {PRESETS}")
        if not self.data:
            raise ConfigError("data is empty: pass --data SOURCE (a folder, a zip, a glob or avatars:N:SEED)")
        if not self.root:
            raise ConfigError("root is empty: pass --root DIR (artifacts and metadata.sqlite live under it)")
        if not self.name or any(c in self.name for c in "/ "):
            raise ConfigError(f"name={self.name!r} must be non-empty without '/' or spaces")
        if not self.model_name or any(c in self.model_name for c in "/. "):
            raise ConfigError(f"model_name={self.model_name!r} must be non-empty without '/', '.' or spaces")
        if self.ingest.mode not in INGEST_MODES:
            raise ConfigError(f"ingest.mode={self.ingest.mode!r} is not one of {INGEST_MODES}")
        if not 0 < self.ingest.eval_ratio < 1:
            raise ConfigError(f"ingest.eval_ratio={self.ingest.eval_ratio} must be in (0, 1): evaluation needs "
                              "an eval split")
        try:
            IngestConfig(source=self.data, size=self.train.model.size, **dataclasses.asdict(self.ingest)).validate()
        except IngestError as e:
            raise ConfigError(f"ingest: {e}") from e
        if self.kubeflow_trainer_retries < 0 or self.kubeflow_trainer_retry_backoff_seconds < 0:
            raise ConfigError("kubeflow_trainer_retries and kubeflow_trainer_retry_backoff_seconds must be ≥ 0")
        if self.beam.runner not in BEAM_RUNNERS:
            raise ConfigError(f"beam.runner={self.beam.runner!r} is not one of {BEAM_RUNNERS}")
        if self.beam.workers < 0:
            raise ConfigError(f"beam.workers={self.beam.workers} must be ≥ 0 (0 = one per core)")
        try:
            self.evaluation.validate()
        except ConfigError as e:
            raise ConfigError(f"evaluation: {e}") from e
        try:
            self.directions.validate()
        except ValueError as e:
            raise ConfigError(str(e)) from e
        if self.infra_timeout_seconds <= 0:
            raise ConfigError("infra_timeout_seconds must be positive")
        self.validation.validate()
        self.train.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineConfig:
        d = dict(d)
        nested = {
            "ingest": IngestSettings(**d.pop("ingest", {})),
            "train": TrainConfig.from_dict(d.pop("train", {"data": "<from ingest>"})),
            "evaluation": EvaluationSettings(**d.pop("evaluation", {})),
            "directions": DirectionsSettings.from_json(d.pop("directions", {})),
            "beam": BeamSettings(**d.pop("beam", {})),
            "validation": ValidationSettings(**d.pop("validation", {})),
        }
        return cls(**d, **nested)

    def override(self, assignments: list[str]) -> PipelineConfig:
        """Apply `section.field=value` (or `field=value` for top-level fields) assignments, typed by the dataclass."""
        config = self
        for item in assignments:
            if "=" not in item:
                raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.steps=500")
            key, raw = item.split("=", 1)
            config = _assign(config, key.strip().split("."), raw.strip(), key)
        return config


def _coerce(raw: str, hint: Any, key: str) -> Any:
    if not is_settable(hint):
        raise ConfigError(f"--set {key}: a {type_name(hint)} cannot be set from text")
    try:
        return parse_value(raw, hint)
    except ValueError as e:
        raise ConfigError(f"--set {key}={raw!r}: {e}") from e


def _assign(obj: Any, path: list[str], raw: str, key: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    name = path[0]
    if isinstance(obj, TrainConfig) and name not in hints and name in {f.name for f in dataclasses.fields(ModelConfig)}:
        return obj.replace(**{name: _coerce(raw, typing.get_type_hints(ModelConfig)[name], key)})
    if name not in hints:
        known = ", ".join(sorted(hints))
        raise ConfigError(f"--set {key}: {type(obj).__name__} has no field {name!r} (fields: {known})")
    if len(path) == 1:
        if dataclasses.is_dataclass(hints[name]):
            raise ConfigError(f"--set {key}: {name!r} is a section; set one of its fields, e.g. {name}.<field>=...")
        return dataclasses.replace(obj, **{name: _coerce(raw, hints[name], key)})
    child = getattr(obj, name)
    if not dataclasses.is_dataclass(child):
        raise ConfigError(f"--set {key}: {name!r} is not a section")
    return dataclasses.replace(obj, **{name: _assign(child, path[1:], raw, key)})


def preset(name: str) -> PipelineConfig:
    """The named preset (see the module docstring)."""
    if name == "smoke":
        return PipelineConfig(
            preset="smoke", root="runs/smoke", data="avatars:160:0",
            ingest=IngestSettings(eval_ratio=0.2, records_per_shard=1000),
            train=TrainConfig(data="<from ingest>", model=ModelConfig(size=32, ngf=8, ndf=8), steps=30,
                              batch_size=16, log_every=10, sample_every=30, checkpoint_every=30, num_samples=16,
                              ema_decay=0.9),
            evaluation=EvaluationSettings(num_samples=64, fid_threshold=1000.0, max_fid_regression=1000.0,
                                          memorization_reference=64, kid_subsets=10, kid_subset_size=16),
            directions=DirectionsSettings(samples=500, eval_samples=32, min_steps=50),
            infra_timeout_seconds=120)
    if name == "quick":
        return PipelineConfig(
            preset="quick", root="runs/quick", data="avatars:4000:0",
            ingest=IngestSettings(eval_ratio=0.1),
            # Calibration (2 cores): 3,000 paper steps ≈ 7 min; EMA 0.995 (with warm-up) scored FID 161.7 at N=1000
            # where the raw G scored 182.4 and a 0.999 EMA after 1,500 steps 268; an untrained G scores far above 250.
            # Measured at the same wall clock (bench/training_options.py; docs/training.md): DiffAugment
            # colour+translation with G at twice D's learning rate (4e-4 vs 2e-4) scored FID 102.3 vs the paper's
            # 154.9 (floor 35.06: 2.92× vs 4.42×); each alone 140.2 / 134.5; TTUR the usual way (D 4e-4, G 1e-4)
            # 208.9; 16,000 avatars 154.8. DiffAugment's step costs 1.099×: 2,730 steps take what 3,000 took.
            # Timed end to end on a quiet 2-core machine (2026-11-28), 2,730 steps left the pipeline at 6.1 min of its
            # 12 (training 3.6 min at ~800 img/s): 5,500 steps then took 9.1 min and scored FID 76.8 (2.19× the floor).
            # Issue 27 (≤ 15 min on an AVX2-only CPU): at the AVX2 budget of ~4,200 such steps, D at ndf 48 with
            # batch 32 for 10,400 steps (the same images seen as 5,200 steps of 64) and EMA 0.999 scored 74.42 (2.12×)
            # on the AVX-512 Zen 5 (8.3 min; limited to AVX2 12.5 min, 76.50); 4,200 of the old steps scored 81–84.
            train=TrainConfig(data="<from ingest>", model=ModelConfig(size=32, ngf=64, ndf=48), steps=10_400,
                              batch_size=32, log_every=50, sample_every=500, checkpoint_every=500, num_samples=64,
                              ema_decay=0.999, learning_rate=4e-4, d_learning_rate=2e-4,
                              diffaugment="color,translation"),
            evaluation=EvaluationSettings(num_samples=1000, fid_threshold=250.0, max_fid_regression=25.0,
                                          memorization_reference=1000, kid_subsets=50, kid_subset_size=300))
    if name == "standard":
        return PipelineConfig(
            preset="standard", root="runs/standard", data="avatars:4000:0",
            ingest=IngestSettings(eval_ratio=0.1),
            # The paper's recipe here (3,000 steps, ~21 min of training on a quiet 2-core machine) scored FID 195.95
            # at N=1000, 6.3× the floor of 31.0; quick's winning recipe (DiffAugment colour+translation, G at 4e-4, D
            # at 2e-4) scored 109.0 (3.52×) at the same 3,000 steps. Its step costs ~0.43 s at 64×64 on 2 quiet
            # cores (4,500 steps took 32 min), so 5,000 steps take ~36 min, leaving ~9 min of the 45 for ingest,
            # directions, the FID evaluation and the infra check. EMA 0.995 scored 98.87 (3.19×) there, 0.999 91.87
            # (2.96×), each in one run of the whole pipeline.
            train=TrainConfig(data="<from ingest>", model=ModelConfig(size=64, ngf=64, ndf=64), steps=5000,
                              batch_size=64, log_every=50, sample_every=500, checkpoint_every=500, num_samples=64,
                              ema_decay=0.999, learning_rate=4e-4, d_learning_rate=2e-4,
                              diffaugment="color,translation"),
            evaluation=EvaluationSettings(num_samples=1000, fid_threshold=250.0, max_fid_regression=25.0,
                                          memorization_reference=1000, kid_subsets=50, kid_subset_size=300))
    if name == "full":
        return PipelineConfig(
            preset="full", root="runs/full", data="",
            ingest=IngestSettings(mode="center-crop", crop_size=108, eval_ratio=0.05, records_per_shard=10_000),
            train=TrainConfig(data="<from ingest>", model=ModelConfig(size=64, ngf=128, ndf=128, kernel_size=5),
                              steps=50_000, batch_size=128, log_every=100, sample_every=1000,
                              checkpoint_every=1000, ema_decay=0.999, precision="mixed_float16", strategy="auto",
                              fid_every=5000, fid_samples=2000),
            evaluation=EvaluationSettings(num_samples=10_000, fid_threshold=50.0, max_fid_regression=2.0,
                                          memorization_reference=20_000),
            beam=BeamSettings(runner="multiprocess", workers=0))
    raise ConfigError(f"unknown preset {name!r}; choose one of {PRESETS}")
