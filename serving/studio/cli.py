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
    p.add_argument("--wait-for-model", metavar="SECONDS", type=_wait_seconds, default=0.0,
                   help="wait up to SECONDS (or 'forever') for --model-base-path / --directions to appear, logging "
                        "every 30 s, instead of failing at once (default 0): in Kubernetes the studio may start "
                        "before the first push; its port is bound while it waits")
    p.add_argument("--timeout", type=float, default=30.0, help="deadline of one model-server call in seconds")
    p.add_argument("--cache-faces", type=int, default=4096, help="rendered faces kept in memory (default 4096)")
    p.add_argument("--canary-share", type=float, default=0.0, metavar="S",
                   help="send this share (0..1) of the requests that name no label or version to the 'canary' "
                        "label (to the default version while there is no canary); /api/stats shows the split")
    p.set_defaults(func=_cmd_studio)


def _wait_seconds(text: str) -> float:
    if text.strip().lower() in ("forever", "inf"):
        return float("inf")
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0 or 'forever', got {text!r}")
    return value


def wait_for_paths(args: argparse.Namespace, log_every_s: float = 30.0, poll_s: float = 1.0) -> None:
    """Wait until --model-base-path (a folder) / --directions (a file) exist, up to --wait-for-model seconds, with a
    log line when waiting starts and every `log_every_s`. A path that exists as the wrong kind fails at once."""
    import time

    from dcgan.cli import CommandError

    wanted = [(flag, path, check) for flag, path, check in (
        ("--model-base-path", args.model_base_path, os.path.isdir), ("--directions", args.directions, os.path.isfile))
        if path is not None]
    for flag, path, check in wanted:
        if os.path.exists(path) and not check(path):
            raise CommandError(f"{flag} {path!r} is not a {'directory' if check is os.path.isdir else 'file'}", 2)
    missing = [(flag, path) for flag, path, check in wanted if not check(path)]
    if not missing or args.wait_for_model <= 0:
        return
    start = last_log = time.monotonic()
    limit = "forever" if args.wait_for_model == float("inf") else f"up to {args.wait_for_model:g} s"
    names = " and ".join(f"{flag} {path}" for flag, path in missing)
    print(f"waiting for {names} to appear ({limit}; a log line every {log_every_s:g} s)", file=sys.stderr, flush=True)
    while True:
        time.sleep(poll_s)
        missing = [(flag, path) for flag, path, check in wanted if not check(path)]
        if not missing:
            print(f"found {' and '.join(p for _, p, _ in wanted)} after {time.monotonic() - start:.0f} s",
                  file=sys.stderr, flush=True)
            return
        now = time.monotonic()
        if now - start >= args.wait_for_model:
            raise CommandError(f"{names} did not appear within {args.wait_for_model:g} s")
        if now - last_log >= log_every_s:
            last_log = now
            print(f"still waiting for {names} ({now - start:.0f} s)", file=sys.stderr, flush=True)


def _cmd_studio(args: argparse.Namespace) -> int:
    from dcgan.cli import CommandError, quiet_tensorflow

    quiet_tensorflow()
    from serving.studio.config import StudioConfig
    from serving.studio.server import StudioServer, StudioServerError

    early = None
    if args.wait_for_model > 0:  # bind first (a port in use fails at once; liveness sees the port while we wait)
        try:
            early = StudioConfig(server=args.server, model=args.model, host=args.host, port=args.port).validate()
            sock = StudioServer.bind_socket(early.host, early.port)
        except ValueError as e:
            raise CommandError(str(e), 2) from None
        except StudioServerError as e:
            raise CommandError(str(e)) from None
        args.port = sock.getsockname()[1]
        print(f"studio port {early.host}:{args.port} bound", file=sys.stderr, flush=True)
        import serving.studio.app  # noqa: F401  (the slow imports: done before waiting, so it serves sooner after)
    try:
        wait_for_paths(args)
    except BaseException:
        if early is not None:
            sock.close()
        raise
    try:
        config = StudioConfig(server=args.server, model=args.model, label=args.label or None, host=args.host,
                              port=args.port, model_base_path=args.model_base_path, directions_file=args.directions,
                              timeout_s=args.timeout, cache_faces=args.cache_faces,
                              canary_share=args.canary_share).validate()
    except ValueError as e:
        raise CommandError(str(e), 2) from None
    try:
        server = StudioServer(config)
        server.bind(sock if early is not None else None)
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
