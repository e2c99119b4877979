"""Serving benchmark: what the model server adds to a generator call, REST vs gRPC, and what batching buys.

One run, printed as a table (and written as JSON with --out):
1. batch-1 latency, p50/p99: the SavedModel called in-process (`signatures["serving_default"](z=...)`, numpy in and
   out) vs gRPC Predict through `dcgan serve` (target: gRPC p50 <= 1.3x in-process) vs REST `:predict`, the three
   interleaved call by call (a shared machine's load then weighs on all three alike);
2. throughput with 32 concurrent clients (one gRPC channel each, batch-1 requests, closed loop), without and with
   server-side batching (target: >= 3x with batching), with their error counts (target: 0).

The model is a freshly initialised 64x64 DCGAN generator with ngf=64 (4x4x512 → 64x64x3, ~0.2 GFLOP per image) —
no training needed, the cost is the same as a trained one's. Servers run as `dcgan serve` subprocesses, the clients
in this process. Run it on a quiet machine; the load average before and after is part of the output:

    .venv/bin/python bench/serving_latency.py --out bench-serving.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(samples: list[float]) -> dict:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "n": len(samples)}


def export_model(folder: str, size: int, ngf: int) -> str:
    from dcgan.config import ModelConfig
    from dcgan.export import export_generator
    from dcgan.model import build_generator

    config = ModelConfig(size=size, ngf=ngf, ndf=ngf)
    path = os.path.join(folder, "models", "dcgan", "1")
    export_generator(build_generator(config, seed=0), config, path, overwrite=True)
    return os.path.dirname(path)


class Server:
    """`dcgan serve` in a subprocess."""

    def __init__(self, model_dir: str, batching_file: str | None = None):
        self.grpc_port, self.rest_port = free_port(), free_port()
        args = [sys.executable, "-m", "dcgan.cli", "serve", f"--port={self.grpc_port}",
                f"--rest_api_port={self.rest_port}", "--model_name=dcgan", f"--model_base_path={model_dir}",
                "--file_system_poll_wait_seconds=0", "--grpc_max_threads=64", "--rest_api_num_threads=8"]
        if batching_file:
            args += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        deadline = time.monotonic() + 180
        while not any("Serving models" in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("dcgan serve did not start:\n" + "".join(self.lines))
            time.sleep(0.1)
        self.target = f"127.0.0.1:{self.grpc_port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def batch1_latency(model_dir: str, target: str, rest_port: int, requests: int, warmup: int) -> dict:
    """In-process SavedModel call, gRPC Predict and REST :predict, interleaved call by call so that all three see
    the same machine load; each includes turning numpy into the request and the response back into numpy."""
    from dcgan.runtime import enable_onednn

    enable_onednn()  # before TensorFlow: oneDNN on every x86 CPU
    import tensorflow as tf

    from serving.client import ServingClient

    fn = tf.saved_model.load(os.path.join(model_dir, "1")).signatures["serving_default"]
    z = np.random.default_rng(0).standard_normal((1, 100)).astype(np.float32)
    body = json.dumps({"instances": z.tolist()})
    conn = http.client.HTTPConnection("127.0.0.1", rest_port, timeout=30)

    def in_process():
        return fn(z=tf.constant(z))["images"].numpy()

    def grpc_call():
        return client.images(z, model="dcgan").outputs["images"]

    def rest_call():
        conn.request("POST", "/v1/models/dcgan:predict", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"REST predict failed: {response.status} {payload[:200]!r}")
        return np.asarray(json.loads(payload)["predictions"], np.float32)

    times: dict[str, list[float]] = {"in_process": [], "grpc": [], "rest": []}
    with ServingClient(target, timeout=30) as client:
        reference = in_process()
        for name, call in (("grpc", grpc_call), ("rest", rest_call)):
            if not np.allclose(call(), reference, atol=1e-5):
                raise RuntimeError(f"{name} answered differently from the in-process call")
        for i in range(warmup + requests):
            for name, call in (("in_process", in_process), ("grpc", grpc_call), ("rest", rest_call)):
                start = time.perf_counter()
                call()
                if i >= warmup:
                    times[name].append(time.perf_counter() - start)
    conn.close()
    return {name: percentiles(samples) for name, samples in times.items()}


def throughput(target: str, clients: int, seconds: float, warmup_s: float) -> dict:
    """Closed loop: each client sends a batch-1 Predict as soon as its previous one returned."""
    from serving.client import ServingClient, ServingClientError

    z = np.random.default_rng(0).standard_normal((1, 100)).astype(np.float32)
    start_at = time.monotonic() + warmup_s
    stop_at = start_at + seconds
    counts = [0] * clients
    errors = [0] * clients
    latencies: list[list[float]] = [[] for _ in range(clients)]

    def run(i: int) -> None:
        with ServingClient(target, timeout=60, retries=0) as client:
            while True:
                t = time.monotonic()
                if t >= stop_at:
                    return
                try:
                    client.images(z, model="dcgan")
                    ok = True
                except ServingClientError:
                    ok = False
                done = time.monotonic()
                if t >= start_at and done <= stop_at:
                    if ok:
                        counts[i] += 1
                        latencies[i].append(done - t)
                    else:
                        errors[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [x for lat in latencies for x in lat]
    return {"qps": sum(counts) / seconds, "requests": sum(counts), "errors": sum(errors),
            **({f"latency_{k}": v for k, v in percentiles(flat).items() if k != "n"} if flat else {})}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--requests", type=int, default=300, help="sequential requests per latency measurement")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=20.0, help="throughput measurement time per configuration")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-timeout-micros", type=int, default=0)
    p.add_argument("--num-batch-threads", type=int, default=1)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)

    work = tempfile.mkdtemp(prefix="dcgan-bench-serving-")
    from dcgan.runtime import machine_line

    print(machine_line(), flush=True)
    results: dict = {"machine": machine_line(), "config": vars(args), "loadavg_before": os.getloadavg(),
                     "cpus": os.cpu_count()}
    try:
        print(f"exporting a {args.size}x{args.size} ngf={args.ngf} generator ...", flush=True)
        model_dir = export_model(work, args.size, args.ngf)
        print("dcgan serve (no batching): batch-1 latency in-process / gRPC / REST, then throughput ...", flush=True)
        server = Server(model_dir)
        try:
            results.update(batch1_latency(model_dir, server.target, server.rest_port, args.requests, args.warmup))
            results["qps_unbatched"] = throughput(server.target, args.clients, args.seconds, warmup_s=3)
        finally:
            server.stop()

        batching = os.path.join(work, "batching_parameters.txt")
        with open(batching, "w") as f:
            f.write(f"max_batch_size {{ value: {args.max_batch_size} }}\n"
                    f"batch_timeout_micros {{ value: {args.batch_timeout_micros} }}\n"
                    f"max_enqueued_batches {{ value: {4 * args.clients} }}\n"
                    f"num_batch_threads {{ value: {args.num_batch_threads} }}\n")
        print("dcgan serve --enable_batching: throughput ...", flush=True)
        server = Server(model_dir, batching)
        try:
            results["qps_batched"] = throughput(server.target, args.clients, args.seconds, warmup_s=3)
        finally:
            server.stop()
        results["loadavg_after"] = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base, grpc_, rest = results["in_process"], results["grpc"], results["rest"]
    unbatched, batched = results["qps_unbatched"], results["qps_batched"]
    results["ratios"] = {
        "grpc_vs_in_process_p50": grpc_["p50_ms"] / base["p50_ms"],
        "rest_vs_grpc_p50": rest["p50_ms"] / grpc_["p50_ms"],
        "batched_vs_unbatched_qps": batched["qps"] / unbatched["qps"],
    }
    r = results["ratios"]
    rows = [
        ("batch-1 latency", "p50 ms", "p99 ms", "vs in-process p50"),
        ("in-process SavedModel", f"{base['p50_ms']:.2f}", f"{base['p99_ms']:.2f}", "1.00x"),
        ("gRPC Predict", f"{grpc_['p50_ms']:.2f}", f"{grpc_['p99_ms']:.2f}",
         f"{r['grpc_vs_in_process_p50']:.2f}x (target <= 1.3x)"),
        ("REST :predict", f"{rest['p50_ms']:.2f}", f"{rest['p99_ms']:.2f}",
         f"{rest['p50_ms'] / base['p50_ms']:.2f}x ({r['rest_vs_grpc_p50']:.2f}x gRPC)"),
        ("", "", "", ""),
        (f"{args.clients} concurrent clients", "QPS", "errors", "p50 / p99 ms"),
        ("gRPC, no batching", f"{unbatched['qps']:.1f}", str(unbatched["errors"]),
         f"{unbatched.get('latency_p50_ms', 0):.0f} / {unbatched.get('latency_p99_ms', 0):.0f}"),
        (f"gRPC, batching (max {args.max_batch_size})", f"{batched['qps']:.1f}", str(batched["errors"]),
         f"{batched.get('latency_p50_ms', 0):.0f} / {batched.get('latency_p99_ms', 0):.0f}"),
        ("batching speed-up", f"{r['batched_vs_unbatched_qps']:.2f}x", "", "(target >= 3x, 0 errors)"),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print()
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    before, after = results["loadavg_before"], results["loadavg_after"]
    print(f"\nload average before {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}, after {after[0]:.2f} {after[1]:.2f} "
          f"{after[2]:.2f} on {results['cpus']} CPUs")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
