"""Options of the model server: tensorflow_model_server's flags, same names and defaults (standard library only, so
the CLI can build its parser without importing TensorFlow or gRPC)."""

from __future__ import annotations

import dataclasses

from serving.errors import Code, ServingError

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"  # TF Serving's PrometheusExporter::kPrometheusPath
EPHEMERAL_PORT = -1  # programmatic use only: bind any free port (the chosen one is in .grpc_port / .rest_api_port)
DEFAULT_MAX_REQUEST_BYTES = 64 << 20


@dataclasses.dataclass
class ServerOptions:
    """tensorflow_model_server's flags (same names and defaults), plus `host`, `max_request_bytes` and `metrics_path`.
    A port of 0 disables that API, as in TF Serving."""

    port: int = 8500
    rest_api_port: int = 0
    host: str = "127.0.0.1"
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: float = 0
    file_system_poll_wait_seconds: float = 1
    enable_batching: bool = False
    batching_parameters_file: str = ""
    allow_version_labels_for_unavailable_models: bool = False
    rest_api_timeout_in_ms: int = 30000
    rest_api_num_threads: int = 0  # 0 = 4 x CPUs
    rest_api_enable_cors_support: bool = False
    grpc_max_threads: int = 0  # 0 = max(32, 4 x CPUs)
    grpc_channel_arguments: str = ""
    grpc_socket_path: str = ""  # also serve gRPC on this Unix domain socket
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    monitoring_config_file: str = ""
    metrics_path: str = DEFAULT_PROMETHEUS_PATH  # '' = no metrics page (monitoring_config_file overrides)
    enable_model_warmup: bool = True
    saved_model_tags: str = "serve"
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    shutdown_grace_seconds: float = 10.0

    def validate(self) -> ServerOptions:
        def bad(message: str) -> ServingError:
            return ServingError(Code.INVALID_ARGUMENT, message)

        if not self.model_config_file and not self.model_base_path:
            raise bad("Both --model_base_path and --model_config_file are empty: give one of them")
        for name in ("port", "rest_api_port"):
            value = getattr(self, name)
            if value != EPHEMERAL_PORT and not 0 <= value <= 65535:
                raise bad(f"--{name}={value} is not a TCP port")
        if self.port == 0 and self.rest_api_port == 0:
            raise bad("--port=0 and --rest_api_port=0: neither gRPC nor REST would be served")
        if self.port > 0 and self.port == self.rest_api_port:
            raise bad("--port and --rest_api_port must be different")
        if self.max_request_bytes <= 0:
            raise bad("--max_request_bytes must be positive")
        if self.rest_api_timeout_in_ms < 0:
            raise bad("--rest_api_timeout_in_ms must be >= 0 (0 = no timeout)")
        return self
