"""`dcgan serve | generate | models status | rollout ...`: the serving commands of the dcgan CLI.

Registered through the `dcgan.commands` entry point (pyproject.toml). This module imports only the standard
library at import time, so `dcgan --help` stays fast; TensorFlow and gRPC are imported inside the commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

DEFAULT_MODEL = "dcgan"


def _bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "t", "yes", "y"):
        return True
    if value in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# (flag, type, help) in tensorflow_model_server's order; defaults come from serving.server.ServerOptions.
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
    from serving.options import ServerOptions

    return {f.name: f.default for f in dataclasses.fields(ServerOptions)}


def _cmd_serve(args: argparse.Namespace) -> int:
    from dcgan.cli import CommandError, quiet_tensorflow

    if args.show_version:
        from dcgan import __version__

        print(f"dcgan model server {__version__} (TensorFlow Serving API 2.16 compatible)")
        return 0
    quiet_tensorflow()
    from serving.errors import ServingError
    from serving.options import ServerOptions
    from serving.server import run

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


# -- client commands --------------------------------------------------------------------------------------------------
def _add_target(p, label: bool = True) -> None:
    p.add_argument("--server", default=os.environ.get("DCGAN_SERVER", "127.0.0.1:8500"),
                   help="gRPC address HOST:PORT of the model server (default $DCGAN_SERVER or 127.0.0.1:8500)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    if label:
        group = p.add_mutually_exclusive_group()
        group.add_argument("--label", help="version label to ask for (e.g. stable, canary)")
        group.add_argument("--version", type=int, help="version number to ask for")
    p.add_argument("--timeout", type=float, default=30.0, help="per-call deadline in seconds (default 30)")


def _client(args):
    from serving.client import ServingClient

    return ServingClient(args.server, timeout=args.timeout)


def _client_errors():
    from dcgan.cli import CommandError
    from serving.client import ServingClientError

    return CommandError, ServingClientError


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate faces on a model server (generate signature) into a grid PNG",
                       description="Ask a model server's `generate` signature for faces of seeds seed..seed+n-1 and "
                                   "write them as a grid (seeds, model version and z recorded in OUT.json).")
    _add_target(p)
    p.add_argument("--n", type=int, default=16, help="number of faces (default 16)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--out", default="grid.png", help="grid PNG to write (default grid.png)")
    p.add_argument("--cols", type=int, help="grid columns")
    p.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    from dcgan.cli import quiet_tensorflow

    quiet_tensorflow()
    CommandError, ServingClientError = _client_errors()  # noqa: N806
    if args.n <= 0:
        raise CommandError("--n must be positive", 2)
    from dcgan import images as imlib

    seeds = list(range(args.seed, args.seed + args.n))
    try:
        with _client(args) as client:
            faces = client.generate(seeds, model=args.model, version=args.version, label=args.label)
    except ServingClientError as e:
        raise CommandError(f"{args.server}: {e}") from None
    pictures = [imlib.decode_png(png) for png in faces.png]
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    imlib.save_image(imlib.make_grid(pictures, ncols=args.cols), out)
    record = {"server": args.server, "model": faces.model, "version": faces.version, "label": args.label,
              "signature": "generate", "seeds": seeds, "z_from_seed": "tf.random.stateless_normal(seed=[s, 0])",
              "z": faces.z.tolist(), "grid": out}
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(record, f)
    print(f"{args.n} faces (seeds {seeds[0]}..{seeds[-1]}) from {faces.model} version {faces.version}"
          f"{' (label ' + args.label + ')' if args.label else ''} -> {out}")
    return 0


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="model server status")
    msub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    msub.required = True
    s = msub.add_parser("status", help="state of every version of a model (GetModelStatus)")
    s.add_argument("--server", default=os.environ.get("DCGAN_SERVER", "127.0.0.1:8500"),
                   help="gRPC address HOST:PORT (default $DCGAN_SERVER or 127.0.0.1:8500)")
    s.add_argument("--model", action="append", help=f"model name; repeat for several (default: the models of "
                                                    f"--config, else {DEFAULT_MODEL})")
    s.add_argument("--config", help="model config file whose models to list")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--timeout", type=float, default=10.0)
    s.set_defaults(func=_cmd_models_status)


def _cmd_models_status(args: argparse.Namespace) -> int:
    from dcgan.cli import quiet_tensorflow

    quiet_tensorflow()
    CommandError, ServingClientError = _client_errors()  # noqa: N806
    names = args.model
    labels: dict[str, dict[str, int]] = {}
    if args.config:
        from serving import config as cfg
        from serving.errors import ServingError

        try:
            models = cfg.model_configs(cfg.read_model_server_config(args.config))
        except ServingError as e:
            raise CommandError(e.message, 2) from None
        labels = {n: dict(m.version_labels) for n, m in models.items()}
        names = names or sorted(models)
    names = names or [DEFAULT_MODEL]
    report, failed = {}, False
    with _client(args) as client:
        for name in names:
            try:
                report[name] = [v.__dict__ for v in client.status(name)]
            except ServingClientError as e:
                report[name] = {"error": f"{e.code.name}: {e.details}"}
                failed = True
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, versions in report.items():
            if isinstance(versions, dict):
                print(f"{name}: {versions['error']}")
                continue
            print(name)
            for v in versions:
                tags = [k for k, n in labels.get(name, {}).items() if n == v["version"]]
                error = f"  {v['error_code']}: {v['error_message']}" if v["error_code"] != "OK" else ""
                print(f"  version {v['version']:<12} {v['state']:<10}{' [' + ', '.join(tags) + ']' if tags else ''}"
                      f"{error}")
    return 1 if failed else 0


def _add_rollout(sub) -> None:
    p = sub.add_parser("rollout", help="canary rollouts with version labels (canary, promote, rollback, status)",
                       description="Move the stable/canary version labels of a model: each step rewrites the model "
                                   "config file atomically and asks the server to reload it.")
    rsub = p.add_subparsers(dest="rollout_command", metavar="STEP")
    rsub.required = True
    for name, text in (("canary", "load version V beside stable and label it canary"),
                       ("promote", "make the canary stable (the old stable stays loaded as 'previous')"),
                       ("rollback", "drop the canary, or undo the last promote"),
                       ("status", "labels and version states")):
        r = rsub.add_parser(name, help=text)
        if name == "canary":
            r.add_argument("version", type=int, help="version number to canary")
            from serving import canary

            canary.add_arguments(r)
        r.add_argument("--config", required=True, help="the server's --model_config_file")
        r.add_argument("--server", default=os.environ.get("DCGAN_SERVER", "127.0.0.1:8500"),
                       help="gRPC address(es) of every replica: HOST:PORT[,HOST:PORT...] or one NAME:PORT whose "
                            "name resolves to every pod (headless Service) (default $DCGAN_SERVER or "
                            "127.0.0.1:8500)")
        r.add_argument("--model", help="model name (default: the only model of the config)")
        r.add_argument("--timeout", type=float, default=120.0,
                       help="how long a new version may take to load / every replica may take to converge")
        r.add_argument("--poll", action="store_true",
                       help="the replicas poll --config themselves (--model_config_file_poll_wait_seconds): write "
                            "the file and wait, push no reload (the default with several replicas)")
        r.add_argument("--no-wait", action="store_true",
                       help="return once the file is written (step 1 of a canary still waits for the load)")
        r.add_argument("--json", action="store_true", help="print JSON")
        r.set_defaults(func=_cmd_rollout)
    from serving.rollout_manifest import add_parser  # `dcgan rollout manifest` (standard library only at import)

    add_parser(rsub)


def _cmd_rollout(args: argparse.Namespace) -> int:
    from dcgan.cli import quiet_tensorflow

    quiet_tensorflow()
    CommandError, ServingClientError = _client_errors()  # noqa: N806
    from serving.client import ServingClient
    from serving.errors import ServingError
    from serving.fleet import resolve_servers
    from serving.rollout import Rollout, RolloutError

    try:
        targets = resolve_servers(args.server)
    except ValueError as e:
        raise CommandError(str(e), 2) from None
    clients = [ServingClient(t, timeout=30.0) for t in targets]
    try:
        rollout = Rollout(args.config, clients, model=args.model, wait_timeout_s=args.timeout,
                          push=len(clients) == 1 and not args.poll, wait=not args.no_wait)
        step = args.rollout_command
        if step == "canary" and args.analyze:
            from serving import canary

            result = canary.analyze(rollout, args.version, canary.config_from_args(args))
            print(json.dumps(result, indent=2) if args.json else "\n".join(canary.summary_lines(result)))
            return 0 if result["decision"] == canary.PROMOTE else canary.EXIT_ROLLED_BACK
        status = rollout.canary(args.version) if step == "canary" else getattr(rollout, step)()
    except (RolloutError, ServingClientError, ValueError) as e:
        raise CommandError(str(e)) from None
    except ServingError as e:
        raise CommandError(e.message, 2) from None
    finally:
        for client in clients:
            client.close()
    from serving import canary

    analysis = canary.read_analysis(args.config) if step == "status" else None
    if args.json:
        print(json.dumps({**status.as_dict(), **({"analysis": analysis} if analysis else {})}, indent=2))
    else:
        print("\n".join(status.lines() + (canary.summary_lines(analysis) if analysis else [])))
    return 0


def register(subparsers) -> None:
    """Add the serving commands to the `dcgan` CLI."""
    _add_serve(subparsers)
    _add_generate(subparsers)
    _add_models(subparsers)
    _add_rollout(subparsers)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the dcgan command: dcgan serve|generate|models|rollout")
