"""Convergence time of a fleet rollout: N in-process replicas on loopback poll one model config file every P seconds;
time `Rollout.canary` (two file writes, each waited for on every replica) and `promote` for several P.

    .venv/bin/python bench/rollout_convergence.py --saved-model EXPORTED_GENERATOR --replicas 3 --poll 0.5 1 2
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saved-model", required=True, help="an exported generator (dcgan export)")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--poll", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    args = parser.parse_args()
    from serving_helpers import MODEL, add_version, running_server, write_config

    from serving.client import ServingClient
    from serving.rollout import Rollout

    with tempfile.TemporaryDirectory() as tmp:
        model = args.saved_model
        base = str(Path(tmp) / "models" / MODEL)
        add_version(model, base, 1)
        add_version(model, base, 2)
        for poll in args.poll:
            path = write_config(str(Path(tmp) / f"models-{poll}.config"), [{"name": MODEL, "base_path": base}])
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
                print(f"replicas {args.replicas}  poll {poll:4.1f} s  canary (2 writes) {t1 - t0:5.2f} s  "
                      f"promote (1 write) {t2 - t1:5.2f} s", flush=True)
                for c in clients:
                    c.close()


if __name__ == "__main__":
    main()
