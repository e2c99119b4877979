"""The FID gate's baseline read from the serving store itself: the version a TF Serving model base path serves,
for orchestrators that have no ML Metadata query the pipeline can compile (open-source Kubeflow Pipelines: its
backend implements no `resolver` executors, so TFX's latest-blessed-model Resolver cannot run there).

The versions under `<serving_root>/<model>/` are exactly the models the Pusher pushed, and it pushes only what the
FidEvaluator blessed (and the InfraCheck passed): the newest complete version is the latest blessed model that
reached the store — what `LatestBlessedModelStrategy` finds in MLMD for the local pipeline. When a TF Serving model
config names a `stable` label for the model (`dcgan rollout` keeps one), that version wins: after a rollback the
gate compares with what is served, not with the version rolled back from.
"""

from __future__ import annotations

import dataclasses

from dcgan import fileio

STABLE_LABEL = "stable"


@dataclasses.dataclass(frozen=True)
class StoreBaseline:
    """The baseline found in a serving store (`path` None: no complete version there), and a line saying where it
    came from ("baseline: version ... of ..." or "no baseline: ...")."""

    path: str | None
    version: int | None
    reason: str


def find_store_baseline(base_path: str, model_config_file: str | None = None) -> StoreBaseline:
    """The version of `base_path` (`<serving_root>/<model>`, where the Pusher pushes) to compare a candidate with:
    the version labelled `stable` for that model in `model_config_file` (a TF Serving `models.config`) when it names
    one, else the newest complete version (its `saved_model.pb` exists: the Pusher writes it last). A store that
    does not exist yet is a first run: no baseline."""
    from serving.model_server import config as serving_config

    name = base_path.rstrip("/").rsplit("/", 1)[-1]
    if model_config_file:
        model = serving_config.model_configs(serving_config.read_model_server_config(model_config_file)).get(name)
        if model is not None and STABLE_LABEL in model.version_labels:
            version = int(model.version_labels[STABLE_LABEL])
            path = fileio.join(base_path, str(version))
            if not fileio.exists(fileio.join(path, "saved_model.pb")):
                raise FileNotFoundError(f"{model_config_file} labels version {version} of model '{name}' "
                                        f"'{STABLE_LABEL}', but {path} holds no saved_model.pb")
            return StoreBaseline(path, version, f"baseline: version {version} of {base_path}, labelled "
                                                f"'{STABLE_LABEL}' in {model_config_file}")
    if not fileio.exists(base_path):
        return StoreBaseline(None, None, f"no baseline: {base_path} does not exist yet (first push)")
    versions = serving_config.list_version_dirs(base_path)
    for version in sorted(versions, reverse=True):
        if fileio.exists(fileio.join(versions[version], "saved_model.pb")):
            return StoreBaseline(versions[version], version,
                                 f"baseline: version {version} of {base_path}, the newest pushed version")
    return StoreBaseline(None, None, f"no baseline: {base_path} holds no complete version (first push)")
