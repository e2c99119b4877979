"""`dcgan studio` (the web studio; `dcgan directions`, which computes the directions it shows, is a library job
registered by dcgan.cli).

Registered through the `dcgan.commands` entry point (pyproject.toml). Only the standard library is imported at module
level, so `dcgan --help` stays fast; FastAPI, gRPC and TensorFlow load inside the commands.
"""

from __future__ import annotations

import argparse
import os
import sys


def _add_studio(sub) -> None:
    p = sub.add_parser("studio", help="the web studio: faces with their z, latent walks, arithmetic, attribute sliders",
                       description="Serve the web studio: a page showing generated faces with their z, latent walks "
                                   "(slerp/lerp), face arithmetic (mean A - mean B + mean C), attribute-direction "
                                   "sliders and custom directions, backed by a model server over gRPC.",
                       epilog="example: dcgan studio --server 127.0.0.1:8500 --model-base-path "
                              "runs/quick/serving/dcgan   (then open http://127.0.0.1:8080/)")
    p.add_argument("--server", default=os.environ.get("DCGAN_SERVER", "127.0.0.1:8500"),
                   help="gRPC address HOST:PORT of the model server (default $DCGAN_SERVER or 127.0.0.1:8500)")
    p.add_argument("--model", default="dcgan", help="model name (default dcgan; the page can ask for another)")
    p.add_argument("--label", help="version label to use by default, e.g. stable or canary (default: the latest "
                                   "version)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; the studio has no "
                                                       "authentication, so bind other addresses deliberately)")
    p.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080; 0 = any free port)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model-base-path", metavar="DIR",
                        help="the model's folder of versions (the model server's --model_base_path): directions are "
                             "read from DIR/<version answering>/assets.extra/directions.json")
    source.add_argument("--directions", metavar="FILE", help="one directions.json for every version")
    p.add_argument("--timeout", type=float, default=30.0, help="deadline of one model-server call in seconds")
    p.add_argument("--cache-faces", type=int, default=4096, help="rendered faces kept in memory (default 4096)")
    p.add_argument("--canary-share", type=float, default=0.0, metavar="S",
                   help="send this share (0..1) of the requests that name no label or version to the 'canary' "
                        "label (to the default version while there is no canary); /api/stats shows the split")
    p.set_defaults(func=_cmd_studio)


def _cmd_studio(args: argparse.Namespace) -> int:
    from dcgan.cli import CommandError, quiet_tensorflow

    quiet_tensorflow()
    from serving.studio.config import StudioConfig

    try:
        config = StudioConfig(server=args.server, model=args.model, label=args.label or None, host=args.host,
                              port=args.port, model_base_path=args.model_base_path, directions_file=args.directions,
                              timeout_s=args.timeout, cache_faces=args.cache_faces,
                              canary_share=args.canary_share).validate()
    except ValueError as e:
        raise CommandError(str(e), 2) from None
    from serving.studio.server import StudioServer, StudioServerError

    try:
        server = StudioServer(config)
        server.bind()
    except StudioServerError as e:
        raise CommandError(str(e)) from None
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the studio has no authentication; anyone who can reach {config.host}:{server.port} can use "
              "it and, through it, the model server", file=sys.stderr)
    reachable = server.check_model_server()
    if reachable is not True:
        print(f"warning: {reachable}. The page shows this and retries.", file=sys.stderr)
    print(f"DCGAN studio at {server.url} (model server {config.server}, model {config.model}"
          f"{', label ' + config.label if config.label else ''}) - Ctrl-C to stop", flush=True)
    server.run()
    return 0


def register(subparsers) -> None:
    """Add `dcgan studio` to the `dcgan` CLI."""
    _add_studio(subparsers)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the dcgan command: dcgan studio")
