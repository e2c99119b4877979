"""The model server: a ServerCore behind a gRPC port (PredictionService + ModelService) and a REST port, configured
with `tensorflow_model_server`'s own options (see `ServerOptions`), started and stopped cleanly.

    server = ModelServer(ServerOptions(port=EPHEMERAL_PORT, rest_api_port=EPHEMERAL_PORT,
                                       model_name="dcgan", model_base_path="/models/dcgan")).start()
    ...  # server.grpc_target, server.rest_url
    server.stop()

`stop()` is graceful: /readyz turns 503, the gRPC server stops accepting and lets in-flight RPCs finish for
`shutdown_grace_seconds`, uvicorn finishes in-flight HTTP requests, batch queues drain, versions unload.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from concurrent import futures

from dcgan.fileio import is_remote
from serving.errors import Code, ServingError
from serving.model_server import config as cfg
from serving.model_server.core import CoreOptions, ServerCore
from serving.model_server.metrics import ServingMetrics
from serving.model_server.options import EPHEMERAL_PORT, ServerOptions

__all__ = ["EPHEMERAL_PORT", "ModelServer", "ServerOptions", "run"]

log = logging.getLogger(__name__)

def _parse_channel_arguments(text: str) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise ServingError(Code.INVALID_ARGUMENT, f"--grpc_channel_arguments: expected key=value, got {item!r}")
        key, value = item.split("=", 1)
        out.append((key.strip(), int(value) if value.strip().lstrip("-").isdigit() else value.strip()))
    return out


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, 0 if port == EPHEMERAL_PORT else port))
    except OSError as e:
        sock.close()
        raise ServingError(Code.UNAVAILABLE, f"cannot listen on {host}:{port} for REST: {e.strerror}") from e
    sock.listen(1024)
    return sock


def _grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ModelServer:
    def __init__(self, options: ServerOptions):
        self.options = options
        self.metrics = ServingMetrics()
        self.core: ServerCore | None = None
        self.grpc_port = 0
        self.rest_api_port = 0
        self._grpc_server = None
        self._uvicorn = None
        self._rest_thread: threading.Thread | None = None
        self._serving = False
        self._stopped = threading.Event()

    # -- addresses ----------------------------------------------------------------------------------------------------
    @property
    def grpc_target(self) -> str:
        host = "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host
        return _grpc_address(host, self.grpc_port)

    @property
    def rest_url(self) -> str:
        host = "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host
        return f"http://[{host}]:{self.rest_api_port}" if ":" in host else f"http://{host}:{self.rest_api_port}"

    # -- lifecycle ----------------------------------------------------------------------------------------------------
    def start(self) -> ModelServer:
        o = self.options.validate()
        self._configure_tensorflow()
        batching = cfg.parse_batching_parameters(o.batching_parameters_file) if o.enable_batching else None
        metrics_path = o.metrics_path or None
        if o.monitoring_config_file:
            metrics_path = cfg.parse_monitoring_config(o.monitoring_config_file)
        if o.model_config_file:
            if o.model_base_path:
                log.warning("--model_config_file is set: --model_name/--model_base_path are ignored")
            config = cfg.read_model_server_config(o.model_config_file)
        else:
            base = o.model_base_path if is_remote(o.model_base_path) else os.path.abspath(o.model_base_path)
            config = cfg.single_model_config(o.model_name, base)
        core_options = CoreOptions(
            file_system_poll_wait_seconds=o.file_system_poll_wait_seconds,
            allow_version_labels_for_unavailable_models=o.allow_version_labels_for_unavailable_models,
            enable_model_warmup=o.enable_model_warmup,
            saved_model_tags=tuple(t.strip() for t in o.saved_model_tags.split(",") if t.strip()),
            batching=batching)
        self.core = ServerCore(core_options, self.metrics)
        try:
            self.core.start(config, o.model_config_file or None, o.model_config_file_poll_wait_seconds)
            if o.port:
                self._start_grpc()
            if o.rest_api_port:
                self._start_rest(metrics_path)
        except BaseException:
            self.stop(grace=0)
            raise
        self._serving = True
        return self

    def _configure_tensorflow(self) -> None:
        from dcgan.runtime import configure_tf_threads

        o = self.options
        if not configure_tf_threads(o.tensorflow_intra_op_parallelism, o.tensorflow_inter_op_parallelism):
            log.warning("TensorFlow is already initialised in this process; thread settings ignored")

    def _start_grpc(self) -> None:
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        from serving.model_server.grpc_service import ModelService, PredictionService

        o = self.options
        threads = o.grpc_max_threads or max(32, 4 * (os.cpu_count() or 1))
        channel_options = [("grpc.max_receive_message_length", o.max_request_bytes),
                           ("grpc.max_send_message_length", -1),
                           ("grpc.so_reuseport", 0)] + _parse_channel_arguments(o.grpc_channel_arguments)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc"),
                             options=channel_options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(self.core, self.metrics),
                                                                            server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(self.core, self.metrics), server)
        address = _grpc_address(o.host, 0 if o.port == EPHEMERAL_PORT else o.port)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as e:  # grpcio raises when the port is taken
            port, reason = 0, str(e)
        else:
            reason = "the address is in use or not local"
        if not port:
            raise ServingError(Code.UNAVAILABLE, f"cannot listen on {address} for gRPC: {reason}")
        if o.grpc_socket_path:
            unix = f"unix:{o.grpc_socket_path}"
            try:
                bound = server.add_insecure_port(unix)
            except RuntimeError as e:
                raise ServingError(Code.UNAVAILABLE, f"cannot listen on {unix} for gRPC: {e}") from e
            if not bound:
                raise ServingError(Code.UNAVAILABLE, f"cannot listen on {unix} for gRPC")
        server.start()
        self._grpc_server, self.grpc_port = server, port
        log.info("Running gRPC ModelServer at %s ...", _grpc_address(o.host, port))

    def _start_rest(self, metrics_path: str | None) -> None:
        import uvicorn

        from serving.model_server.rest import RestApi

        o = self.options
        sock = _bind(o.host, o.rest_api_port)
        self.rest_api_port = sock.getsockname()[1]
        app = RestApi(self.core, self.metrics, timeout_s=o.rest_api_timeout_in_ms / 1000.0,
                      max_request_bytes=o.max_request_bytes,
                      num_threads=o.rest_api_num_threads or 4 * (os.cpu_count() or 1),
                      metrics_path=metrics_path, cors=o.rest_api_enable_cors_support,
                      is_serving=lambda: self._serving)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30,
                                timeout_graceful_shutdown=max(1, int(o.shutdown_grace_seconds)))
        self._uvicorn = uvicorn.Server(config)
        self._rest_thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="rest",
                                             daemon=True)
        self._rest_thread.start()
        deadline = time.monotonic() + 30
        while not self._uvicorn.started:
            if not self._rest_thread.is_alive() or time.monotonic() > deadline:
                raise ServingError(Code.UNAVAILABLE, f"the REST server did not start on {o.host}:{self.rest_api_port}")
            time.sleep(0.01)
        log.info("Exporting HTTP/REST API at:%s ...", self.rest_url)

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown (idempotent)."""
        if self._stopped.is_set():
            return
        grace = self.options.shutdown_grace_seconds if grace is None else grace
        self._serving = False
        if self._grpc_server is not None:
            self._grpc_server.stop(grace).wait()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            if grace <= 0:
                self._uvicorn.force_exit = True
            if self._rest_thread is not None:
                self._rest_thread.join(timeout=grace + 5)
        if self.core is not None:
            self.core.stop()
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    def __enter__(self) -> ModelServer:
        return self.start() if self.core is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def run(options: ServerOptions, announce=print) -> int:
    """Run until SIGTERM/SIGINT, then shut down gracefully (what `dcgan serve` does)."""
    server = ModelServer(options)
    stop = threading.Event()

    def on_signal(signum, frame):
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        if server.grpc_port:
            announce(f"Running gRPC ModelServer at {_grpc_address(options.host, server.grpc_port)} ...")
        if server.rest_api_port:
            announce(f"Exporting HTTP/REST API at:{server.rest_url} ...")
        announce(f"Serving models: {', '.join(server.core.model_names()) or '(none yet)'}")
        while not stop.wait(0.5):
            pass
        server.stop()
        announce("Server stopped.")
        return 0
    finally:
        server.stop(grace=0)
        for s, handler in previous.items():
            signal.signal(s, handler)
