"""Canary rollouts with TF Serving version labels: `stable`, `canary` and (after a promotion) `previous`.

Each step rewrites the model config file atomically (so a restart, or a server polling the file, gets the same
config) and asks the server to apply it with ModelService.HandleReloadConfigRequest. The version policy is pinned
to `specific { versions: ... }` with exactly the labelled versions.

- `canary V`: load V beside stable (step 1: V joins the policy, wait until it is AVAILABLE), then label it
  `canary` (step 2). TF Serving only lets a label point at an AVAILABLE version, hence two steps; if V fails to
  load, the config is restored and nothing is labelled.
- `promote`: `stable` → the canary's version, `previous` → the old stable (kept loaded), `canary` removed.
- `rollback`: with a canary: drop it (its version unloads). Without one, after a promote: `stable` → `previous`
  again, and the promoted version unloads.
- `status`: the labels of the config file and the state of every version on the server.

Without a `stable` label, the first canary calls the highest AVAILABLE version `stable`.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import os
from dataclasses import dataclass

from serving import config as cfg
from serving.client import ServingClient, ServingClientError

STABLE, CANARY, PREVIOUS = "stable", "canary", "previous"


class RolloutError(Exception):
    """A rollout step was refused; the config file and the server are as they were before it."""


@dataclass
class RolloutStatus:
    model: str
    policy: str
    labels: dict[str, int]
    versions: list  # [client.VersionState] from the server

    def lines(self) -> list[str]:
        out = [f"model {self.model}: policy {self.policy}"]
        states = {v.version: v for v in self.versions}
        for label in sorted(self.labels, key=lambda k: (k != STABLE, k != CANARY, k)):
            version = self.labels[label]
            state = states[version].state if version in states else "not on server"
            out.append(f"  {label:<9} → version {version} ({state})")
        for v in self.versions:
            names = [k for k, n in self.labels.items() if n == v.version]
            error = f"  {v.error_code}: {v.error_message}" if v.error_code != "OK" else ""
            out.append(f"  version {v.version}: {v.state}{' [' + ', '.join(names) + ']' if names else ''}{error}")
        return out

    def as_dict(self) -> dict:
        return {"model": self.model, "policy": self.policy, "labels": dict(self.labels),
                "versions": [v.__dict__ for v in self.versions]}


class Rollout:
    def __init__(self, config_path: str, client: ServingClient, model: str | None = None,
                 wait_timeout_s: float = 120.0):
        self.config_path = os.path.abspath(config_path)
        self.client = client
        self.model_name = model
        self.wait_timeout_s = wait_timeout_s

    # -- steps --------------------------------------------------------------------------------------------------------
    def status(self) -> RolloutStatus:
        config, model = self._read()
        try:
            versions = self.client.status(model.name)
        except ServingClientError as e:
            if e.code.name != "NOT_FOUND":
                raise
            versions = []
        return RolloutStatus(model.name, cfg.policy_description(model), dict(model.version_labels), versions)

    def canary(self, version: int) -> RolloutStatus:
        version = int(version)
        with self._locked():
            original, model = self._read()
            labels = dict(model.version_labels)
            stable = labels.get(STABLE)
            if stable is None:
                stable = self._latest_available(model.name)
            if version == stable:
                raise RolloutError(f"version {version} is already the stable version of {model.name}")
            self._check_version_dir(model, version)
            # Step 1: load the candidate beside stable, no label yet.
            step1 = self._with(original, model.name, versions={stable, version}, labels={STABLE: stable})
            self._apply(step1, original)
            try:
                self.client.wait_for_version(model.name, version, timeout=self.wait_timeout_s)
            except ServingClientError as e:
                self._apply(original, original, restoring=True)
                raise RolloutError(f"version {version} of {model.name} did not become AVAILABLE, so it was not "
                                   f"labelled {CANARY}: {e.details}") from None
            # Step 2: label it.
            step2 = self._with(original, model.name, versions={stable, version},
                               labels={STABLE: stable, CANARY: version})
            self._apply(step2, original)
        return self.status()

    def promote(self) -> RolloutStatus:
        with self._locked():
            original, model = self._read()
            labels = dict(model.version_labels)
            if CANARY not in labels:
                raise RolloutError(f"model {model.name} has no '{CANARY}' label to promote")
            canary, stable = labels[CANARY], labels.get(STABLE)
            new_labels = {STABLE: canary}
            if stable is not None and stable != canary:
                new_labels[PREVIOUS] = stable
            self._apply(self._with(original, model.name, versions=set(new_labels.values()), labels=new_labels),
                        original)
        return self.status()

    def rollback(self) -> RolloutStatus:
        with self._locked():
            original, model = self._read()
            labels = dict(model.version_labels)
            if CANARY in labels:
                new_labels = {k: v for k, v in labels.items() if k != CANARY}
            elif PREVIOUS in labels:
                new_labels = {STABLE: labels[PREVIOUS]}
            else:
                raise RolloutError(f"model {model.name} has nothing to roll back: no '{CANARY}' or '{PREVIOUS}' label")
            if not new_labels:
                raise RolloutError(f"model {model.name} has a '{CANARY}' label but no '{STABLE}' one to go back to")
            self._apply(self._with(original, model.name, versions=set(new_labels.values()), labels=new_labels),
                        original)
        return self.status()

    # -- helpers ------------------------------------------------------------------------------------------------------
    def _read(self):
        config = cfg.read_model_server_config(self.config_path)
        models = cfg.model_configs(config)
        if not models:
            raise RolloutError(f"{self.config_path} lists no models")
        if self.model_name is None:
            if len(models) > 1:
                raise RolloutError(f"{self.config_path} lists several models ({', '.join(sorted(models))}); "
                                   "name one with --model")
            return config, next(iter(models.values()))
        if self.model_name not in models:
            raise RolloutError(f"model {self.model_name} is not in {self.config_path} "
                               f"(it lists {', '.join(sorted(models))})")
        return config, models[self.model_name]

    def _latest_available(self, name: str) -> int:
        try:
            states = self.client.status(name)
        except ServingClientError as e:
            raise RolloutError(f"cannot read the status of {name}: {e}") from None
        available = [s.version for s in states if s.state == "AVAILABLE"]
        if not available:
            raise RolloutError(f"model {name} has no AVAILABLE version to keep as '{STABLE}'")
        return max(available)

    @staticmethod
    def _check_version_dir(model, version: int) -> None:
        base = model.base_path
        if os.path.isdir(base) and not os.path.isdir(os.path.join(base, str(version))):
            on_disk = sorted(cfg.list_version_dirs(base))
            raise RolloutError(f"{base} has no version {version} (versions on disk: {on_disk or 'none'})")

    @staticmethod
    def _with(config, name: str, versions: set[int], labels: dict[str, int]):
        new = copy.deepcopy(config)
        for model in new.model_config_list.config:
            if model.name == name:
                model.model_version_policy.Clear()
                model.model_version_policy.specific.versions.extend(sorted(versions))
                model.version_labels.clear()
                for label, version in labels.items():
                    model.version_labels[label] = version
                if not model.model_platform and model.model_type == 0:
                    model.model_platform = cfg.TENSORFLOW_PLATFORM
        return new

    def _apply(self, config, original, restoring: bool = False) -> None:
        """Write the file, then ask the server to reload; if the server refuses, restore the original file."""
        cfg.write_model_server_config(self.config_path, config)
        try:
            self.client.reload_config(config, timeout=max(self.client.timeout, self.wait_timeout_s))
        except ServingClientError as e:
            if not restoring:
                cfg.write_model_server_config(self.config_path, original)
                with contextlib.suppress(ServingClientError):
                    self.client.reload_config(original)
            raise RolloutError(f"the server refused the new config: {e.code.name}: {e.details}") from None

    @contextlib.contextmanager
    def _locked(self):
        """One rollout at a time per config file."""
        folder, name = os.path.split(self.config_path)
        with open(os.path.join(folder, f".{name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
