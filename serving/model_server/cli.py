"""`dcgan serve`: the model server's command, with tensorflow_model_server's flags.

Registered through the `dcgan.commands` entry point (pyproject.toml). This module imports only the standard
library at import time, so `dcgan --help` stays fast; TensorFlow and gRPC are imported inside the command.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


def _bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "t", "yes", "y"):
        return True
    if value in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# (flag, type, help) in tensorflow_model_server's order; defaults come from serving.model_server.options.ServerOptions.
_SERVE_FLAGS = [
    ("port", int, "TCP port for the gRPC API (PredictionService, ModelService); 0 disables it"),
    ("rest_api_port", int, "TCP port for the HTTP/REST API; 0 (the default, as in TF Serving) disables it"),
    ("host", str, "address to bind (not a TF Serving flag; TF Serving binds 0.0.0.0)"),
    ("model_name", str, "name of the model (ignored if --model_config_file is set)"),
    ("model_base_path", str, "folder of integer version sub-folders (ignored if --model_config_file is set)"),
    ("model_config_file", str, "ModelServerConfig text proto: several models, version policies, version labels"),
    ("model_config_file_poll_wait_seconds", float, "re-read --model_config_file this often (0 = read once)"),
    ("file_system_poll_wait_seconds", float, "look for new/removed version folders this often (0 = only at start)"),
    ("enable_batching", _bool, "batch concurrent requests on the server"),
    ("batching_parameters_file", str, "BatchingParameters text proto (max_batch_size, batch_timeout_micros, "
                                      "max_enqueued_batches, num_batch_threads, allowed_batch_sizes)"),
    ("allow_version_labels_for_unavailable_models", _bool, "a new label may point at a version not loaded yet "
                                                           "(needed to start with labels in the config)"),
    ("rest_api_timeout_in_ms", int, "deadline of a REST call (0 = none)"),
    ("rest_api_num_threads", int, "threads running REST requests (0 = 4 x CPUs)"),
    ("rest_api_enable_cors_support", _bool, "add CORS headers to REST responses"),
    ("grpc_max_threads", int, "threads running gRPC requests (0 = max(32, 4 x CPUs))"),
    ("grpc_channel_arguments", str, "comma-separated key=value gRPC server arguments"),
    ("grpc_socket_path", str, "also serve the gRPC API on this Unix domain socket (e.g. /tmp/tf-serving.sock)"),
    ("max_request_bytes", int, "largest request accepted: gRPC message / REST body (not a TF Serving flag)"),
    ("monitoring_config_file", str, "MonitoringConfig text proto (prometheus_config { enable: true path: ... })"),
    ("metrics_path", str, "Prometheus page on the REST port; '' disables it (not a TF Serving flag)"),
    ("enable_model_warmup", _bool, "replay assets.extra/tf_serving_warmup_requests when a version loads"),
    ("saved_model_tags", str, "comma-separated MetaGraph tags to load"),
    ("tensorflow_intra_op_parallelism", int, "TensorFlow intra-op threads (0 = auto)"),
    ("tensorflow_inter_op_parallelism", int, "TensorFlow inter-op threads (0 = auto)"),
    ("shutdown_grace_seconds", float, "on SIGTERM, how long in-flight requests may finish (not a TF Serving flag)"),
]


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="run the model server (TF Serving gRPC + REST APIs)",
                       description="A TensorFlow-Serving-compatible model server. Takes tensorflow_model_server's "
                                   "flags (--flag=value or --flag value; booleans as --flag or --flag=false).",
                       epilog="example: dcgan serve --port=8500 --rest_api_port=8501 --model_name=dcgan "
                              "--model_base_path=runs/demo/serving/dcgan")
    defaults = _server_defaults()
    for name, kind, text in _SERVE_FLAGS:
        default = defaults[name]
        names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        if kind is _bool:
            p.add_argument(*names, dest=name, type=_bool, nargs="?", const=True, default=default, metavar="BOOL",
                           help=f"{text} (default: {str(default).lower()})")
        else:
            p.add_argument(*names, dest=name, type=kind, default=default, metavar=kind.__name__.upper(),
                           help=f"{text} (default: {default!r})")
    p.add_argument("--version", dest="show_version", action="store_true", help="print the version and exit")
    p.set_defaults(func=_cmd_serve)


def _server_defaults() -> dict:
    from serving.model_server.options import ServerOptions

    return {f.name: f.default for f in dataclasses.fields(ServerOptions)}


def _cmd_serve(args: argparse.Namespace) -> int:
    from dcgan.cli import CommandError, quiet_tensorflow

    if args.show_version:
        from dcgan import __version__

        print(f"dcgan model server {__version__} (TensorFlow Serving API 2.16 compatible)")
        return 0
    quiet_tensorflow()
    from serving.errors import ServingError
    from serving.model_server.options import ServerOptions
    from serving.model_server.server import run

    names = {f.name for f in dataclasses.fields(ServerOptions)}
    options = ServerOptions(**{k: v for k, v in vars(args).items() if k in names})
    try:
        return run(options, announce=lambda line: print(line, flush=True))
    except ServingError as e:
        message = e.message
        if "assign label" in message and not options.allow_version_labels_for_unavailable_models:
            message += (" (the config labels versions that are still loading at startup: start with "
                        "--allow_version_labels_for_unavailable_models=true, as TF Serving requires)")
        raise CommandError(message, 2 if e.code.name == "INVALID_ARGUMENT" else 1) from None


def register(subparsers) -> None:
    """Add `dcgan serve` to the `dcgan` CLI."""
    _add_serve(subparsers)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the dcgan command: dcgan serve")
