"""The model server's core: which models and versions exist, their states, labels, and the requests against them.

It follows TF Serving's ServerCore + AspiredVersionsManager + FileSystemStoragePathSource:
- the config (`ModelServerConfig`) names models, their `base_path`, version policy and `version_labels`;
- every `file_system_poll_wait_seconds` each base path is listed; the policy picks the aspired versions
  (latest N / all / specific); new aspired versions are loaded first, and only when one of them is AVAILABLE are the
  versions that fell out of the policy unloaded (availability preserving) — so a version that fails to load is
  reported (state END with its error in GetModelStatus) and never replaces a working one. A failed version is retried
  only when its files change.
- a label may only point at an AVAILABLE version (FAILED_PRECONDITION otherwise, the whole new config is refused and the
  old one keeps serving); with `allow_version_labels_for_unavailable_models` a *new* label may point at any version.
- model specs resolve like TF Serving's: version → Specific(name, v), label → its version, neither → the highest
  AVAILABLE version (Latest(name)); unknown → NOT_FOUND "Servable not found for request: ...".
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dcgan.fileio import ObjectStoreError, check_s3_reachable, is_remote
from serving.errors import Code, ServingError, failed_precondition, invalid_argument, not_found
from serving.model_server import config as cfg
from serving.model_server.batching import BatchingQueue, SharedBatchScheduler
from serving.model_server.config import BatchingOptions
from serving.model_server.metrics import ServingMetrics
from serving.model_server.servable import Servable
from serving.tensors import DEFAULT_MAX_ELEMENTS

log = logging.getLogger(__name__)

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass(frozen=True)
class CoreOptions:
    file_system_poll_wait_seconds: float = 1.0
    allow_version_labels_for_unavailable_models: bool = False
    enable_model_warmup: bool = True
    saved_model_tags: tuple[str, ...] = ("serve",)
    batching: BatchingOptions | None = None
    max_tensor_elements: int = DEFAULT_MAX_ELEMENTS


@dataclass(frozen=True)
class ModelRequest:
    """What a request asks for (a ModelSpec): a name plus at most one of version / label."""

    name: str
    version: int | None = None
    label: str | None = None
    signature_name: str = ""

    @classmethod
    def from_model_spec(cls, spec) -> ModelRequest:
        choice = spec.WhichOneof("version_choice")
        return cls(spec.name, spec.version.value if choice == "version" else None,
                   spec.version_label if choice == "version_label" else None, spec.signature_name)


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str
    error_code: Code = Code.OK
    error_message: str = ""


@dataclass
class _Version:
    version: int
    path: str
    state: str = START
    error: ServingError | None = None
    servable: Servable | None = None
    fingerprint: tuple | None = None
    failures: int = 0
    retry_at: float = 0.0
    queues: dict[str, BatchingQueue] = field(default_factory=dict)


@dataclass
class _Model:
    config: object  # ModelConfig proto
    versions: dict[int, _Version] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    missing_base_logged: bool = False
    list_error: str = ""  # why the base path could not be listed at the last poll ("" = it could)


def _fingerprint(path: str) -> tuple:
    """Every file of a version directory (variables/ and assets included) with its size and modification time: it
    changes while a copy is still being written, and when a broken version is fixed. Local or object store."""
    parts = []
    if not is_remote(path):
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(folder, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                parts.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
        return tuple(parts)
    import tensorflow as tf

    try:
        for folder, _, files in tf.io.gfile.walk(path):
            for name in sorted(files):
                full = folder.rstrip("/") + "/" + name
                st = tf.io.gfile.stat(full)
                parts.append((full[len(path):], st.length, st.mtime_nsec))
    except tf.errors.OpError as e:
        raise OSError(f"cannot read {path}: {e.message}") from e
    return tuple(sorted(parts))


def _is_complete(fingerprint: tuple) -> bool:
    """A version directory is loadable once its saved_model.pb (or .pbtxt) exists; a copy still missing it is not a
    version yet (TF Serving's loader would fail on it)."""
    return any(name.lstrip("/") in ("saved_model.pb", "saved_model.pbtxt") for name, *_ in fingerprint)


# A version that failed to load is retried after RETRY_FIRST_SECONDS, doubling up to RETRY_MAX_SECONDS (TF Serving
# retries failed loads on a timer, --load_retry_interval_micros), and at once when its files change.
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
STARTUP_LIST_RETRIES = (2.0,)  # the AWS SDK retries each call itself (~1 min against a dead endpoint)


class ServerCore:
    """Models, versions and labels of one server; thread-safe."""

    def __init__(self, options: CoreOptions | None = None, metrics: ServingMetrics | None = None):
        self.options = options or CoreOptions()
        self.metrics = metrics or ServingMetrics()
        self.metrics.is_known_model = self.has_model
        self._lock = threading.RLock()  # guards the maps below; never held while loading
        self._reconcile_lock = threading.RLock()  # one reconcile/reload at a time
        self._models: dict[str, _Model] = {}
        self._retired: dict[str, _Model] = {}  # removed from the config: their END states stay visible
        self._config = cfg.empty_model_server_config()
        self._scheduler = (SharedBatchScheduler(self.options.batching, self._on_batch)
                           if self.options.batching is not None else None)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._config_file: str | None = None
        self._config_file_poll = 0.0
        self._config_text: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------------------
    def start(self, config, config_file: str | None = None, config_file_poll_seconds: float = 0.0) -> None:
        """Apply the first config (loads every aspired version, waiting for them, like TF Serving does before it
        opens its ports) and start polling the file system (and the config file)."""
        self._config_file, self._config_file_poll = config_file, config_file_poll_seconds
        if config_file:
            self._config_text = cfg.read_text(config_file)
        self._probe_object_stores(config)
        self.reload_config(config, source="startup")
        self._retry_unreadable_stores()
        failed = []
        with self._lock:
            for name, model in self._models.items():
                if model.versions and not any(v.state == AVAILABLE for v in model.versions.values()):
                    errors = "; ".join(f"version {v.version}: {v.error.message}" for v in model.versions.values()
                                       if v.error is not None)
                    failed.append(f"{{name: {name} due to error: {errors}}}")
                elif not model.versions:
                    log.warning("No versions of servable %s found under base path %s", name, model.config.base_path)
        if failed:
            raise ServingError(Code.UNKNOWN, f"{len(failed)} model(s) did not become available: {', '.join(failed)}")
        polls = [p for p in (self.options.file_system_poll_wait_seconds, config_file_poll_seconds if config_file else 0)
                 if p > 0]
        if polls:
            self._poller = threading.Thread(target=self._poll_loop, args=(min(polls),), name="fs-poller", daemon=True)
            self._poller.start()

    @staticmethod
    def _probe_object_stores(config) -> None:
        """A bounded boto3 probe of every s3:// base path before tensorflow-io first touches it: its AWS SDK retries
        an unreachable endpoint for about a minute per call with no setting to shorten it (see dcgan.fileio)."""
        for model in cfg.model_configs(config).values():
            try:
                check_s3_reachable(model.base_path)
            except ObjectStoreError as e:
                raise ServingError(Code.UNAVAILABLE, f"model {model.name}: {cfg.store_error(model.base_path, e)}") \
                    from None

    def _retry_unreadable_stores(self) -> None:
        """At start-up, an object store that cannot be listed is tried once more after 2 s (each call is already
        retried by the AWS SDK), then the start fails naming the URL (and for s3:// the endpoint variable) instead of
        serving nothing."""
        for delay in STARTUP_LIST_RETRIES:
            with self._lock:
                unreadable = [m for m in self._models.values() if m.list_error and is_remote(m.config.base_path)]
            if not unreadable:
                return
            log.warning("retrying in %.0f s: %s", delay, "; ".join(m.list_error for m in unreadable))
            time.sleep(delay)
            self.poll_once()
        with self._lock:
            unreadable = [m for m in self._models.values() if m.list_error and is_remote(m.config.base_path)]
        if unreadable:
            raise ServingError(Code.UNAVAILABLE, "; ".join(
                f"model {m.config.name}: {m.list_error}" for m in unreadable) + f" (after {len(STARTUP_LIST_RETRIES)}"
                " retries)")

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=30)
        if self._scheduler is not None:
            self._scheduler.stop()
        with self._lock:
            models = list(self._models.values())
        for model in models:
            for v in list(model.versions.values()):
                if v.state == AVAILABLE:
                    self._unload(model, v)

    # -- config -------------------------------------------------------------------------------------------------------
    def config(self):
        with self._lock:
            return copy.deepcopy(self._config)

    def reload_config(self, new_config, source: str = "grpc") -> None:
        """Switch to `new_config` (HandleReloadConfigRequest). Invalid configs are refused whole; the old one keeps
        serving. Returns after the new config's versions were loaded (or failed)."""
        try:
            cfg.validate_model_server_config(new_config)
            with self._reconcile_lock:
                labels = self._check_labels(new_config)
                new_models = cfg.model_configs(new_config)
                with self._lock:
                    models: dict[str, _Model] = {}
                    for name, model_config in new_models.items():
                        model = self._models.get(name) or self._retired.pop(name, None) or _Model(model_config)
                        if model.config.base_path != model_config.base_path:
                            model.missing_base_logged = False
                        model.config = copy.deepcopy(model_config)
                        model.labels = labels.get(name, {})
                        models[name] = model
                    removed = {n: m for n, m in self._models.items() if n not in models}
                    self._models = models
                    self._retired.update(removed)
                    self._config = copy.deepcopy(new_config)
                for model in removed.values():
                    for v in list(model.versions.values()):
                        if v.state == AVAILABLE:
                            self._unload(model, v)
                self._reconcile_all()
        except ServingError:
            self.metrics.reloads.labels(source, "error").inc()
            raise
        self.metrics.reloads.labels(source, "ok").inc()
        log.info("model config applied (%s): %s", source, ", ".join(
            f"{m.name} [{cfg.policy_description(m)}]" for m in cfg.model_configs(new_config).values()) or "no models")

    def _check_labels(self, new_config) -> dict[str, dict[str, int]]:
        """TF Serving's UpdateModelVersionLabelMap rule: labels only on AVAILABLE versions (or, with
        allow_version_labels_for_unavailable_models, a label that is new or unchanged may point anywhere)."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for name, model_config in cfg.model_configs(new_config).items():
                current = self._models.get(name)
                for label, version in model_config.version_labels.items():
                    allow_any = False
                    if self.options.allow_version_labels_for_unavailable_models:
                        existing = current.labels.get(label) if current else None
                        allow_any = existing is None or existing == version
                    v = current.versions.get(version) if current else None
                    if not allow_any and (v is None or v.state != AVAILABLE):
                        raise failed_precondition(f"Request to assign label to version {version} of model {name}, "
                                                  "which is not currently available for inference")
                    out.setdefault(name, {})[label] = int(version)
        return out

    # -- the file system ----------------------------------------------------------------------------------------------
    def poll_once(self) -> None:
        """One pass over every model's base path (what the poller does every file_system_poll_wait_seconds)."""
        with self._reconcile_lock:
            self._reconcile_all()

    def _reconcile_all(self) -> None:
        with self._lock:
            models = list(self._models.values())
        for model in models:
            try:
                self._reconcile(model)
            except Exception:  # noqa: BLE001 - one broken model must not stop the others
                log.exception("reconciling model %s failed", model.config.name)

    def _reconcile(self, model: _Model) -> None:
        name, base = model.config.name, model.config.base_path
        try:
            on_disk = cfg.list_version_dirs(base)
            fingerprints = {}
            for version, path in on_disk.items():
                current = model.versions.get(version)
                if current is None or current.state not in (AVAILABLE, LOADING):
                    fingerprints[version] = _fingerprint(path)
            model.missing_base_logged = False
            model.list_error = ""
        except OSError as e:
            # The base path (or the store holding it) cannot be read: keep serving what is loaded.
            model.list_error = str(e.strerror or e)
            if not model.missing_base_logged:
                log.warning("base path %s of model %s cannot be listed: %s; keeping the loaded versions", base, name,
                            e.strerror or e)
                model.missing_base_logged = True
            return
        # A directory still being copied (no saved_model.pb yet) is not a version yet.
        on_disk = {v: p for v, p in on_disk.items() if v not in fingerprints or _is_complete(fingerprints[v])}
        aspired = cfg.select_versions(model.config, on_disk)
        to_load = []
        now = time.monotonic()
        with self._lock:
            for version in sorted(aspired, reverse=True):
                current = model.versions.get(version)
                if current is not None and current.state in (AVAILABLE, LOADING):
                    continue
                fingerprint = fingerprints[version]
                failures = 0
                if current is not None and current.error is not None:
                    if current.fingerprint == fingerprint and now < current.retry_at:
                        continue  # failed before, unchanged since, and its back-off has not passed
                    failures = current.failures
                entry = _Version(version, on_disk[version], START, fingerprint=fingerprint, failures=failures)
                model.versions[version] = entry
                to_load.append(entry)
        for entry in to_load:
            self._load(model, entry)
        with self._lock:
            serving_aspired = any(v.state == AVAILABLE for k, v in model.versions.items() if k in aspired)
            retire = [v for k, v in model.versions.items()
                      if v.state == AVAILABLE and k not in aspired and (serving_aspired or not aspired)]
        for entry in retire:
            self._unload(model, entry)

    def _load(self, model: _Model, entry: _Version) -> None:
        name = model.config.name
        with self._lock:
            entry.state = LOADING
        log.info("Loading servable: {name: %s version: %d} from %s", name, entry.version, entry.path)
        try:
            servable = Servable(name, entry.version, entry.path, tags=self.options.saved_model_tags,
                                warmup=self.options.enable_model_warmup,
                                max_tensor_elements=self.options.max_tensor_elements)
        except Exception as e:  # noqa: BLE001 - any failure becomes the version's status
            error = e if isinstance(e, ServingError) else ServingError(Code.UNKNOWN, f"{type(e).__name__}: {e}")
            self._failed(entry, error)
            self.metrics.load_failures.labels(name, str(entry.version)).inc()
            log.error("Loading servable: {name: %s version: %d} failed: %s (retry in %.0f s or when its files "
                      "change)", name, entry.version, error, entry.retry_at - time.monotonic())
            return
        try:
            after = _fingerprint(entry.path)
        except OSError as e:
            after = (str(e),)
        if after != entry.fingerprint:  # written to while it loaded: a partial copy must not be served
            self._failed(entry, ServingError(Code.UNAVAILABLE, f"{entry.path} changed while it was loading (a copy "
                                                               "still in progress); it is loaded again once stable"))
            entry.retry_at = 0.0
            log.warning("Version %d of %s changed while loading; loading it again on the next poll", entry.version,
                        name)
            return
        with self._lock:
            entry.servable, entry.state, entry.error = servable, AVAILABLE, None
        self.metrics.available.labels(name, str(entry.version)).set(1)
        log.info("Successfully loaded servable version {name: %s version: %d} in %.1f s", name, entry.version,
                 servable.load_seconds)

    def _failed(self, entry: _Version, error: ServingError) -> None:
        with self._lock:
            entry.state, entry.error = END, error
            entry.failures += 1
            entry.retry_at = time.monotonic() + min(RETRY_MAX_SECONDS,
                                                    RETRY_FIRST_SECONDS * 2 ** (entry.failures - 1))

    def _unload(self, model: _Model, entry: _Version) -> None:
        name = model.config.name
        with self._lock:
            entry.state = UNLOADING
            queues, entry.queues = list(entry.queues.values()), {}
        for queue in queues:
            self._scheduler.close_queue(queue)
        with self._lock:
            entry.servable, entry.state, entry.error = None, END, None
        self.metrics.available.labels(name, str(entry.version)).set(0)
        log.info("Unloaded servable version {name: %s version: %d}", name, entry.version)

    def _poll_loop(self, tick: float) -> None:
        fs_every = self.options.file_system_poll_wait_seconds
        file_every = self._config_file_poll if self._config_file else 0
        next_fs = time.monotonic() + fs_every if fs_every > 0 else float("inf")
        next_file = time.monotonic() + file_every if file_every > 0 else float("inf")
        while not self._stop.wait(max(0.01, min(next_fs, next_file) - time.monotonic())):
            now = time.monotonic()
            if now >= next_file:
                next_file = now + file_every
                self._poll_config_file()
            if now >= next_fs:
                next_fs = now + fs_every
                self.poll_once()

    def _poll_config_file(self) -> None:
        """Re-read --model_config_file; apply it when its text changed. A broken file is logged and ignored."""
        path = self._config_file
        try:
            text = cfg.read_text(path)
        except OSError as e:
            log.error("cannot read model config file %s: %s; keeping the current config", path, e.strerror or e)
            self.metrics.reloads.labels("file", "error").inc()
            return
        if text == self._config_text:
            return
        self._config_text = text
        try:
            new_config = cfg.parse_model_server_config(text, path)
        except ServingError as e:
            self.metrics.reloads.labels("file", "error").inc()
            log.error("%s; the previous config keeps serving", e)
            return
        try:
            self.reload_config(new_config, source="file")
        except ServingError as e:
            log.error("model config file %s was not applied (%s); the previous config keeps serving", path, e)

    # -- requests -----------------------------------------------------------------------------------------------------
    def resolve(self, request: ModelRequest) -> Servable:
        """The servable a model spec names (ServerCore::ServableRequestFromModelSpec + GetServableHandle)."""
        name = request.name
        if not name:
            raise invalid_argument("ModelSpec has no name specified.")
        with self._lock:
            model = self._models.get(name)
            if request.version is not None:
                version, what = request.version, f"Specific({name}, {request.version})"
            elif request.label is not None:
                if model is None or request.label not in model.labels:
                    raise invalid_argument(f"Unrecognized servable version label: {request.label}")
                version = model.labels[request.label]
                what = f"Specific({name}, {version})"
            else:
                what = f"Latest({name})"
                ready = [v for v, e in model.versions.items() if e.state == AVAILABLE] if model else []
                version = max(ready) if ready else None
            entry = model.versions.get(version) if model is not None and version is not None else None
            if entry is None or entry.state != AVAILABLE or entry.servable is None:
                raise not_found(f"Servable not found for request: {what}")
            return entry.servable

    def signature_inputs(self, request: ModelRequest, signature_name: str):
        return self.resolve(request).signature_inputs(signature_name)

    def predict(self, request: ModelRequest, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = (),
                timeout: float | None = None, servable: Servable | None = None
                ) -> tuple[Servable, str, dict[str, np.ndarray]]:
        """Run a predict request → (servable that answered, signature name, outputs)."""
        servable = servable or self.resolve(request)
        call = servable.prepare(request.signature_name, inputs, output_filter)
        if self._scheduler is None:
            return servable, call.signature, servable.execute(call.signature, call.inputs, call.output_aliases)
        outputs = self._queue(servable, call.signature).submit(call.inputs, timeout)
        return servable, call.signature, {k: outputs[k] for k in call.output_aliases}

    def _queue(self, servable: Servable, signature: str) -> BatchingQueue:
        with self._lock:
            model = self._models.get(servable.name)
            entry = model.versions.get(servable.version) if model else None
            if entry is None or entry.servable is not servable:  # unloading meanwhile: run it directly
                return _DirectQueue(servable, signature)
            queue = entry.queues.get(signature)
            if queue is None:
                queue = self._scheduler.queue(f"{servable.name}/{servable.version}/{signature}",
                                              lambda inputs, s=servable, sig=signature: s.execute(sig, inputs))
                entry.queues[signature] = queue
            return queue

    def _on_batch(self, queue_name: str, size: int, padded: int) -> None:
        model, version, signature = queue_name.rsplit("/", 2)
        self.metrics.batch_size.labels(model, version, signature).observe(size)

    def model_status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """GetModelStatus: every version this server knows of (newest first), or one version."""
        if not name:
            raise invalid_argument("Missing model name in request.")
        with self._lock:
            model = self._models.get(name) or self._retired.get(name)
            if version is not None:
                entry = model.versions.get(version) if model else None
                if entry is None:
                    raise not_found(f"Could not find version {version} of model {name}")
                entries = [entry]
            else:
                if model is None or not model.versions:
                    raise not_found(f"Could not find any versions of model {name}")
                entries = sorted(model.versions.values(), key=lambda e: -e.version)
            return [VersionStatus(e.version, e.state, e.error.code if e.error else Code.OK,
                                  e.error.message if e.error else "") for e in entries]

    def labels(self, name: str) -> dict[str, int]:
        with self._lock:
            model = self._models.get(name)
            return dict(model.labels) if model else {}

    def has_model(self, name: str) -> bool:
        with self._lock:
            return name in self._models or name in self._retired

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def ready(self) -> bool:
        """Every configured model has an AVAILABLE version."""
        with self._lock:
            return bool(self._models) and all(any(v.state == AVAILABLE for v in m.versions.values())
                                              for m in self._models.values())


class _DirectQueue:
    """Stands in for a batching queue while a version unloads: runs the request on the handle it holds."""

    def __init__(self, servable: Servable, signature: str):
        self.servable, self.signature = servable, signature

    def submit(self, inputs, timeout=None):
        return self.servable.execute(self.signature, inputs)
