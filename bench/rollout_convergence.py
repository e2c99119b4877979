"""Convergence time of a fleet rollout: N in-process replicas on loopback poll one model config every P seconds;
time `Rollout.canary` (two config writes, each waited for on every replica) and `promote` (one write) for several P.

`--store local`: the config is a local file (a shared volume). `--store s3`: the config and the versions are on an
S3 server on loopback (moto_server, started here), the config written with conditional PUTs (ETag) under the lease
object, the replicas reading it through tensorflow-io.

    .venv/bin/python bench/rollout_convergence.py --saved-model EXPORTED_GENERATOR --replicas 3 --poll 0.5 1 2
    .venv/bin/python bench/rollout_convergence.py --saved-model EXPORTED_GENERATOR --store s3 --poll 0.5 1 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _s3_fleet_files(stack: contextlib.ExitStack, model: str, name: str) -> tuple[str, str]:
    """Start moto_server, point this process at it, upload versions 1 and 2; returns (bucket URL, base path)."""
    from s3_server import s3_server

    server = stack.enter_context(s3_server())
    os.environ.update(server.environment)
    client = server.client()
    client.create_bucket(Bucket="bench-rollout")
    for version in (1, 2):
        files = sorted((os.path.relpath(os.path.join(d, n), model), os.path.join(d, n))
                       for d, _, names in os.walk(model) for n in names)
        for rel, full in sorted(files, key=lambda f: f[0] == "saved_model.pb"):
            client.upload_file(full, "bench-rollout", f"models/{name}/{version}/{rel}")
    return "s3://bench-rollout", f"s3://bench-rollout/models/{name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saved-model", required=True, help="an exported generator (dcgan export)")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--poll", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--store", choices=("local", "s3"), default="local", help="where the config lives")
    args = parser.parse_args()
    from serving_helpers import MODEL, add_version, running_server, write_config

    from dcgan.runtime import machine_line
    from serving.client import ServingClient
    from serving.config_store import open_store
    from serving.rollout.labels import Rollout

    print(machine_line(), flush=True)

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as files:
        if args.store == "s3":
            bucket, base = _s3_fleet_files(files, args.saved_model, MODEL)
        else:
            base = str(Path(tmp) / "models" / MODEL)
            add_version(args.saved_model, base, 1)
            add_version(args.saved_model, base, 2)
        for poll in args.poll:
            local = write_config(str(Path(tmp) / f"models-{poll}.config"), [{"name": MODEL, "base_path": base}])
            path = local
            if args.store == "s3":
                path = f"{bucket}/models-{poll}.config"
                open_store(path).write(Path(local).read_text(), None, step="bench")
            with contextlib.ExitStack() as stack:
                servers = [stack.enter_context(running_server(model_config_file=path,
                                                              model_config_file_poll_wait_seconds=poll))
                           for _ in range(args.replicas)]
                clients = [ServingClient(s.grpc_target) for s in servers]
                rollout = Rollout(path, clients, wait_timeout_s=120, push=False)
                t0 = time.perf_counter()
                rollout.canary(1)
                t1 = time.perf_counter()
                rollout.promote()
                t2 = time.perf_counter()
                print(f"store {args.store:<5}  replicas {args.replicas}  poll {poll:4.1f} s  canary (2 writes) "
                      f"{t1 - t0:5.2f} s  promote (1 write) {t2 - t1:5.2f} s", flush=True)
                for c in clients:
                    c.close()
    return 0


if __name__ == "__main__":
    from dcgan.fileio import exit_process

    exit_process(main())
