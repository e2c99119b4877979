"""`dcgan generate | models status`: the client commands of the dcgan CLI (serving.client against a model server).

Registered through the `dcgan.commands` entry point (pyproject.toml). This module imports only the standard
library at import time, so `dcgan --help` stays fast; TensorFlow and gRPC are imported inside the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

DEFAULT_MODEL = "dcgan"


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
        from serving.errors import ServingError
        from serving.model_server import config as cfg

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


def register(subparsers) -> None:
    """Add the client commands to the `dcgan` CLI."""
    _add_generate(subparsers)
    _add_models(subparsers)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the dcgan command: dcgan generate|models")
