"""Training throughput of our DCGAN trainer vs the PyTorch reference (the pytorch/examples DCGAN update, same
architecture), from one run, with our achieved GFLOP/s against a TF matmul measured in the same run.

    make bench-setup                                   # once: .venv-torch (torch 2.13 CPU) for the reference
    .venv/bin/python bench/train_throughput.py         # 64×64, ngf=ndf=64, 4×4 kernels, batch 64, fp32
    .venv/bin/python bench/train_throughput.py --emulate-avx2   # the same on AVX2 code only (an AVX2-only CPU)

Every measurement runs in a fresh process (thread settings apply, nothing is shared), rounds alternate the
implementations, and the median of the rounds is reported. Check `uptime` first: on 2 cores one busy process halves
every figure; only ratios from one run mean anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_PY = os.path.join(REPO, ".venv-torch", "bin", "python")


# -- FLOP model ------------------------------------------------------------------------------------------------------
def forward_macs(size: int, ngf: int, ndf: int, nz: int = 100, k: int = 4, nc: int = 3) -> tuple[int, int]:
    """Multiply-accumulates of one image through G and through D."""
    n = int(math.log2(size // 4))
    g = nz * 16 * ngf * 2 ** (n - 1)
    width, side = ngf * 2 ** (n - 1), 4
    for _ in range(n - 1):
        g += side * side * width * (width // 2) * k * k  # transposed conv: every input pixel scatters a k×k×Cout patch
        width, side = width // 2, side * 2
    g += side * side * width * nc * k * k
    d, width, side = 0, ndf, size // 2
    d += side * side * nc * width * k * k
    for _ in range(n - 1):
        side //= 2
        d += side * side * width * (width * 2) * k * k
        width *= 2
    d += 16 * width
    return g, d


def step_flops(size: int, ngf: int, ndf: int, kind: str) -> float:
    """FLOPs of one training image. A backward pass costs ~2 forwards (input + weight gradients), 1 where only one
    of them is needed. Ours: G fwd, D fwd real+fake, D weight-grads real+fake, D fwd on G(z) again, D input-grads,
    G bwd = 3 G + 6 D. pytorch/examples: the same, but its G step also computes D's weight gradients = 3 G + 8 D."""
    g, d = forward_macs(size, ngf, ndf)
    d_units = 6 if kind == "ours" else 8
    return 2.0 * (3 * g + d_units * d)


# -- workers (each runs in its own process) --------------------------------------------------------------------------
def worker_ours(args: argparse.Namespace) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore")
    from dcgan.config import ModelConfig, TrainConfig
    from dcgan.train import Trainer, configure_threads

    configure_threads(args.intra, args.inter)
    if args.unfused_bn:  # what the fused BN bought: Keras 3's own BatchNormalization maths
        import keras

        from dcgan import model

        model.FusedBatchNormalization.call = keras.layers.BatchNormalization.call
    config = TrainConfig(model=ModelConfig(size=args.size, ngf=args.ngf, ndf=args.ndf), data=args.data,
                         steps=10_000, batch_size=args.batch, precision=args.precision, log_every=10_000,
                         sample_every=10_000, checkpoint_every=10_000)
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(config, os.path.join(run, "run"), progress=False)
        for _ in range(args.warmup):
            trainer._train_step()
        t = time.perf_counter()
        for _ in range(args.steps):
            out = trainer._train_step()
        float(out["d_loss"])  # wait for the last step
        elapsed = time.perf_counter() - t
    return {"images_per_sec": args.steps * args.batch / elapsed}


def worker_matmul(args: argparse.Namespace) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from dcgan.runtime import enable_onednn

    enable_onednn()  # before TensorFlow: oneDNN on every x86 CPU
    import tensorflow as tf

    n = 2048
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    f = tf.function(lambda: tf.matmul(a, b))
    for _ in range(3):
        f().numpy()
    reps = 20
    t = time.perf_counter()
    for _ in range(reps):
        f().numpy()
    return {"gflops": 2 * n**3 * reps / (time.perf_counter() - t) / 1e9}


# -- driver -----------------------------------------------------------------------------------------------------------
def _run(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": REPO, **(env or {})})
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_data(folder: str, size: int, n: int = 512) -> str:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(os.path.join(folder, f"{i}.png"))
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", choices=("ours", "matmul"), help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=15, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    p.add_argument("--precision", default="float32")
    p.add_argument("--intra", type=int, default=0)
    p.add_argument("--inter", type=int, default=0)
    p.add_argument("--unfused-bn", action="store_true")
    p.add_argument("--variants", default="eigen,unfused_bn,threads_2_1,bf16",
                   help="extra rows of ours: eigen (oneDNN off: TF_ENABLE_ONEDNN_OPTS=0, TensorFlow's default on "
                        "AVX2-only CPUs), unfused_bn, threads_2_1, bf16 (comma-separated, '' for none)")
    p.add_argument("--emulate-avx2", action="store_true",
                   help="run every implementation on its AVX2 code only (ONEDNN_MAX_CPU_ISA=AVX2 for both oneDNNs, "
                        "ATEN_CPU_CAPABILITY=avx2 for PyTorch's own kernels): an AVX2-only CPU emulated on AVX-512")
    p.add_argument("--data")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    if args.worker == "ours":
        print(json.dumps(worker_ours(args)))
        return
    if args.worker == "matmul":
        print(json.dumps(worker_matmul(args)))
        return

    if args.emulate_avx2:  # inherited by every worker process below
        os.environ.update(ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    if not os.path.exists(TORCH_PY):
        sys.exit("bench: the PyTorch reference needs .venv-torch: run `make bench-setup` first")
    common = ["--size", str(args.size), "--ngf", str(args.ngf), "--ndf", str(args.ndf), "--batch", str(args.batch),
              "--steps", str(args.steps), "--warmup", str(args.warmup)]
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(os.path.join(tmp, "data"), args.size)
        ours = [sys.executable, __file__, "--worker", "ours", "--data", data, *common]
        eigen = {"TF_ENABLE_ONEDNN_OPTS": "0"}
        variants = {  # name: (command, environment)
            "ours (fp32)": (ours, None),
            "ours, oneDNN off (Eigen)": (ours, eigen),
            "ours, Keras unfused BN": (ours + ["--unfused-bn"], None),
            "ours, intra=2 inter=1": (ours + ["--intra", "2", "--inter", "1"], None),
            "ours, mixed_bfloat16": (ours + ["--precision", "mixed_bfloat16"], None),
        }
        wanted = {"eigen": "ours, oneDNN off (Eigen)", "unfused_bn": "ours, Keras unfused BN",
                  "threads_2_1": "ours, intra=2 inter=1", "bf16": "ours, mixed_bfloat16"}
        keep = {"ours (fp32)"} | {wanted[v] for v in args.variants.split(",") if v}
        runs = {name: run for name, run in variants.items() if name in keep}
        runs["PyTorch 2.13 reference (fp32)"] = ([TORCH_PY, os.path.join(REPO, "bench", "torch_dcgan_reference.py"),
                                                  *common], None)
        from dcgan.runtime import machine_line

        print(machine_line(), flush=True)
        print(f"bench: {args.size}x{args.size}, ngf={args.ngf}, ndf={args.ndf}, batch {args.batch}, "
              f"{args.rounds} rounds x {args.steps} steps; {_load()}", flush=True)
        results: dict[str, list[float]] = {name: [] for name in runs}
        matmul = []
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in order:
                out = _run(*runs[name])
                results[name].append(out["images_per_sec"])
                kernels = f"; PyTorch's kernels: {out['cpu_capability']}" if "cpu_capability" in out else ""
                print(f"  round {r + 1}: {name:32s} {results[name][-1]:7.1f} img/s  ({_load()}{kernels})", flush=True)
            matmul.append(_run([sys.executable, __file__, "--worker", "matmul"])["gflops"])
    peak = statistics.median(matmul)
    torch_ips = statistics.median(results["PyTorch 2.13 reference (fp32)"])
    rows = []
    for name, values in results.items():
        ips = statistics.median(values)
        kind = "torch" if name.startswith("PyTorch") else "ours"
        flops = step_flops(args.size, args.ngf, args.ndf, kind)
        rows.append({"implementation": name, "images_per_sec": ips, "gflop_per_image": flops / 1e9,
                     "gflops": ips * flops / 1e9, "of_matmul": ips * flops / 1e9 / peak,
                     "vs_pytorch": ips / torch_ips, "rounds": values})
    print()
    print(f"| implementation | img/s (median) | GFLOP/img | GFLOP/s | % of matmul ({peak:.0f} GFLOP/s) | vs PyTorch |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['implementation']} | {row['images_per_sec']:.1f} | {row['gflop_per_image']:.2f} | "
              f"{row['gflops']:.0f} | {100 * row['of_matmul']:.0f}% | {row['vs_pytorch']:.2f}x |")
    print(f"\nTF fp32 2048² matmul (oneDNN as above): {peak:.0f} GFLOP/s (median of {len(matmul)}); {_load()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_line(), "rows": rows, "matmul_gflops": matmul, "args": vars(args)}, f,
                      indent=2)


if __name__ == "__main__":
    main()
