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

A fleet: `Rollout` takes several clients (one per replica, see `serving.rollout.fleet.resolve_servers`). With
`push=False` the replicas are expected to poll the file (`--model_config_file_poll_wait_seconds`), so nothing is
sent to them; either way each step then waits until **every** replica serves the new versions and labels and names
the stragglers (`wait=False` returns after writing; step 1 of a canary always waits, since a label may only name a
version that is AVAILABLE everywhere). A canary that fails to load on any replica reverts the file and names the
replica.

The config file may be local (a shared volume), `s3://…` or `gs://…`: `serving.config_store` reads it with a
version token (content hash / ETag / generation) and writes it with a compare-and-swap, so a file changed by someone
else since it was read is never overwritten (the error names who wrote it). One rollout at a time per config file:
a lock file locally, a lease object on an object store (a second rollout is refused, not queued, naming the holder).
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass

from serving import config_store
from serving.client import ServingClient, ServingClientError
from serving.model_server import config as cfg
from serving.rollout import fleet

STABLE, CANARY, PREVIOUS = "stable", "canary", "previous"


class RolloutError(Exception):
    """A rollout step was refused; the config file and the server are as they were before it."""


@dataclass
class RolloutStatus:
    model: str
    policy: str
    labels: dict[str, int]
    versions: list  # [client.VersionState] from the server
    replicas: dict | None = None  # {target: "ok" | what lags}, fleet status

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
        for target, state in (self.replicas or {}).items():
            out.append(f"  replica {target}: {state}")
        return out

    def as_dict(self) -> dict:
        return {"model": self.model, "policy": self.policy, "labels": dict(self.labels),
                "versions": [v.__dict__ for v in self.versions], "replicas": self.replicas}


class Rollout:
    def __init__(self, config_path: str, client: ServingClient | Sequence[ServingClient], model: str | None = None,
                 wait_timeout_s: float = 120.0, push: bool = True, wait: bool = True,
                 store: config_store.ConfigStore | None = None):
        """`config_path`: a local path, `s3://…` or `gs://…` (`store` overrides how it is reached, e.g. a fake GCS
        bucket in tests)."""
        try:
            self.store = store or config_store.open_store(config_path)
        except config_store.ConfigStoreError as e:
            raise RolloutError(str(e)) from None
        self.config_path = self.store.url
        self.clients = [client] if isinstance(client, ServingClient) else list(client)
        if not self.clients:
            raise RolloutError("no replica to roll out to")
        self.client = self.clients[0]
        self.model_name = model
        self.wait_timeout_s = wait_timeout_s
        self.push, self.wait = push, wait
        self._token: str | None = None
        self._step = ""

    # -- steps --------------------------------------------------------------------------------------------------------
    def status(self) -> RolloutStatus:
        config, model = self._read()
        try:
            versions = self.client.status(model.name)
        except ServingClientError as e:
            if e.code.name != "NOT_FOUND":
                raise
            versions = []
        replicas = None
        if len(self.clients) > 1 or not self.push:
            want = set(model.model_version_policy.specific.versions)
            replicas = {c.target: fleet.replica_lag(c, model.name, want, dict(model.version_labels)) or "ok"
                        for c in self.clients}
        return RolloutStatus(model.name, cfg.policy_description(model), dict(model.version_labels), versions,
                             replicas)

    def canary(self, version: int) -> RolloutStatus:
        version = int(version)
        with self._locked(f"canary {version}"):
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
            self._apply(step1, original, wait=False)
            lag = fleet.wait_converged(self.clients, model.name, {stable, version}, {STABLE: stable},
                                       self.wait_timeout_s, fail_version=version)
            if lag:
                self._apply(original, original, restoring=True, wait=False)
                replicas = "; ".join(f"{t}: {why}" for t, why in sorted(lag.items()))
                raise RolloutError(f"version {version} of {model.name} did not become AVAILABLE on every replica, "
                                   f"so it was not labelled {CANARY} and the config was reverted ({replicas})")
            # Step 2: label it.
            step2 = self._with(original, model.name, versions={stable, version},
                               labels={STABLE: stable, CANARY: version})
            self._apply(step2, original)
        return self.status()

    def promote(self) -> RolloutStatus:
        with self._locked("promote"):
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
        with self._locked("rollback"):
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
        try:
            snapshot = self.store.read()
        except config_store.ConfigStoreError as e:
            raise RolloutError(str(e)) from None
        self._token = snapshot.token
        config = cfg.parse_model_server_config(snapshot.text, self.config_path)
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
        try:
            on_store = list_versions(base)
        except config_store.ConfigStoreError as e:
            raise RolloutError(f"cannot check that version {version} exists: {e}") from None
        if on_store is not None and version not in on_store:
            raise RolloutError(f"{base} has no version {version} (versions on the store: {sorted(on_store) or 'none'})")

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

    def _write(self, config) -> None:
        """Write atomically with a compare-and-swap on the version this rollout read (refused, naming the last
        writer, when anybody changed the file since)."""
        try:
            self._token = self.store.write(cfg.format_model_server_config(config), self._token, step=self._step)
        except config_store.ConfigStoreError as e:
            raise RolloutError(str(e)) from None

    def _apply(self, config, original, restoring: bool = False, wait: bool | None = None) -> None:
        """Write the file; push it to every replica (push=True) and/or wait until every replica serves it. If a
        replica refuses a pushed config, restore the original file (and push it back)."""
        self._write(config)
        if self.push:
            for client in self.clients:
                try:
                    client.reload_config(config, timeout=max(client.timeout, self.wait_timeout_s))
                except ServingClientError as e:
                    if not restoring:
                        self._write(original)
                        for c in self.clients:
                            with contextlib.suppress(ServingClientError):
                                c.reload_config(original)
                    raise RolloutError(f"replica {client.target} refused the new config: {e.code.name}: "
                                       f"{e.details}") from None
        if (self.wait if wait is None else wait) and not restoring:
            model = cfg.model_configs(config)[self.model_name or next(iter(cfg.model_configs(config)))]
            lag = fleet.wait_converged(self.clients, model.name, set(model.model_version_policy.specific.versions),
                                       dict(model.version_labels), self.wait_timeout_s)
            if lag:
                replicas = "; ".join(f"{t}: {why}" for t, why in sorted(lag.items()))
                raise RolloutError(f"the config was written but {len(lag)} of {len(self.clients)} replicas did not "
                                   f"converge within {self.wait_timeout_s:g} s: {replicas}")

    @contextlib.contextmanager
    def _locked(self, step: str):
        """One rollout at a time per config file: the store's lock / lease, held for the whole step (its TTL covers
        the step's two waits; an expired lease of a dead rollout is taken over)."""
        self._step = step
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.store.lease(config_store.operator(step), ttl_s=2 * self.wait_timeout_s + 120))
            except config_store.ConfigStoreError as e:
                raise RolloutError(str(e)) from None
            yield


# -- the versions a base path holds (the rollout refuses a canary of a version that is not there) --------------------
def list_versions(base_path: str) -> set[int] | None:
    """The integer version folders under a model's base path: local and gs:// through the model server's own scan
    (`serving.model_server.config`, tf.io.gfile), s3:// with boto3 (the operator's process needs no tensorflow-io).
    None when a local base path does not exist on this machine (the replicas may mount it elsewhere: no check).
    ConfigStoreError when a store cannot be listed."""
    if base_path.startswith("s3://"):
        return _list_s3_versions(base_path)
    if "://" not in base_path and not os.path.isdir(base_path):
        return None
    try:
        return set(cfg.list_version_dirs(base_path))
    except OSError as e:
        raise config_store.ConfigStoreError(f"cannot list {base_path}: {e}") from None


def _list_s3_versions(base_path: str) -> set[int]:
    import botocore.exceptions as bex

    bucket, _, prefix = base_path[len("s3://"):].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
    versions: set[int] = set()
    try:
        pages = config_store.s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix,
                                                                                   Delimiter="/")
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix):].rstrip("/")
                if name.isdigit():
                    versions.add(int(name))
    except (bex.ClientError, bex.BotoCoreError, OSError) as e:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
        raise config_store.ConfigStoreError(f"cannot list {base_path} at {endpoint}: {e}") from None
    return versions
