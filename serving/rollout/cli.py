"""`dcgan rollout canary | promote | rollback | status | manifest`: the rollout commands of the dcgan CLI.

Registered through the `dcgan.commands` entry point (pyproject.toml). This module imports only the standard
library at import time, so `dcgan --help` stays fast; TensorFlow and gRPC are imported inside the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


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
            from serving.rollout import canary

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
    from serving.rollout.manifest import add_parser  # `dcgan rollout manifest` (standard library only at import)

    add_parser(rsub)


def _cmd_rollout(args: argparse.Namespace) -> int:
    from dcgan.cli import CommandError, quiet_tensorflow

    quiet_tensorflow()
    from serving.client import ServingClient, ServingClientError
    from serving.errors import ServingError
    from serving.rollout.fleet import resolve_servers
    from serving.rollout.labels import Rollout, RolloutError

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
            from serving.rollout import canary

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
    from serving.rollout import canary

    analysis = canary.read_analysis(args.config) if step == "status" else None
    if args.json:
        print(json.dumps({**status.as_dict(), **({"analysis": analysis} if analysis else {})}, indent=2))
    else:
        print("\n".join(status.lines() + (canary.summary_lines(analysis) if analysis else [])))
    return 0


def register(subparsers) -> None:
    """Add the rollout commands to the `dcgan` CLI."""
    _add_rollout(subparsers)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the dcgan command: dcgan rollout canary|promote|rollback|status|manifest")
