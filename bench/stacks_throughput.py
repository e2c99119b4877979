"""Training and FID img/s of the two locked stacks side by side, in one run (docs/platforms.md):
`legacy` (TF 2.16, Python 3.10, this checkout's .venv) and `current` (TF 2.21, Python 3.13, the Debian 13 root).

    make bench-stacks          # = scripts/in_current_root.sh --host .venv/bin/python bench/stacks_throughput.py

The current stack's interpreter runs in the Debian 13 root (chroot $DCGAN_CURRENT_CHROOT, which
scripts/in_current_root.sh --host sets while the root's /proc etc. are mounted). Every measurement is a fresh
process; rounds alternate the stacks and the median is reported. Check `uptime` first: only ratios from one run
mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT_REPO = os.environ.get("DCGAN_CURRENT_REPO", "/work/dcgan")  # the repo copy inside the Debian 13 root


def worker_fid(args: argparse.Namespace) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.path.join(REPO, "bench"))
    from dcgan.runtime import enable_onednn

    enable_onednn()  # before TensorFlow: oneDNN on every x86 CPU
    import tensorflow as tf
    from fid_throughput import make_images

    from dcgan.metrics import inception as inc

    tf.get_logger().setLevel("ERROR")
    images = make_images(args.images, args.size, 3)
    extractor = inc.FeatureExtractor()
    extractor(images[: min(len(images), inc.DEFAULT_BATCH_SIZE)])  # trace + warm-up
    t = time.perf_counter()
    extractor(images)
    return {"images_per_sec": len(images) / (time.perf_counter() - t), "tensorflow": tf.__version__}


def commands(stack: str, what: str, args: argparse.Namespace) -> list[str]:
    data = args.data  # a folder of training images, seen by both: host path for legacy, in-root path for current
    if stack == "legacy":
        python, repo = [os.path.join(REPO, ".venv", "bin", "python")], REPO
        data = os.path.join(os.environ.get("DCGAN_CURRENT_CHROOT", "/"), data.lstrip("/"))
    else:
        root = os.environ.get("DCGAN_CURRENT_CHROOT")
        if not root:
            sys.exit("the current stack runs in the Debian 13 root: start this through "
                     "`scripts/in_current_root.sh --host .venv/bin/python bench/stacks_throughput.py` "
                     "(make bench-stacks)")
        python = ["chroot", root, "/usr/bin/env", "-i", "HOME=/root", "LANG=C.UTF-8", "PATH=/usr/bin:/bin",
                  f"PYTHONPATH={ROOT_REPO}", f"{ROOT_REPO}/.venv/bin/python"]
        repo = ROOT_REPO
    if what == "train":
        return [*python, f"{repo}/bench/train_throughput.py", "--worker", "ours", "--size", str(args.size),
                "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", "3", "--data", data]
    return [*python, f"{repo}/bench/stacks_throughput.py", "--worker", "fid", "--images", str(args.images),
            "--size", str(args.size)]


def run(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", choices=("fid",), help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=64, help="image side for both benchmarks (default 64)")
    p.add_argument("--batch", type=int, default=64, help="training batch (default 64)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per measurement")
    p.add_argument("--images", type=int, default=48, help="images per FID measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker_fid(args)))
        return
    root = os.environ.get("DCGAN_CURRENT_CHROOT")
    if not root:
        sys.exit("start this through `make bench-stacks` (the current stack runs in the Debian 13 root)")
    sys.path.insert(0, os.path.join(REPO, "bench"))
    from train_throughput import make_data

    args.data = f"{ROOT_REPO}/bench-data"  # inside the root; the host reaches it under DCGAN_CURRENT_CHROOT
    make_data(os.path.join(root, args.data.lstrip("/")), args.size)
    stacks = ("legacy", "current")
    results: dict[tuple[str, str], list[float]] = {(s, w): [] for s in stacks for w in ("train", "fid")}
    from dcgan.runtime import machine_line

    print(f"{machine_line()} (legacy, on the host)", flush=True)
    print(f"bench: train {args.size}², "
          f"batch {args.batch}, {args.steps} steps; FID {args.images} images of {args.size}²", flush=True)
    for r in range(args.rounds):
        for what in ("train", "fid"):
            for stack in stacks if r % 2 == 0 else reversed(stacks):
                results[(stack, what)].append(run(commands(stack, what, args))["images_per_sec"])
                print(f"  round {r + 1}: {stack:7s} {what:5s} {results[(stack, what)][-1]:7.1f} img/s", flush=True)
    print()
    print("| stack | train img/s (median) | FID features img/s (median) |")
    print("|---|---:|---:|")
    for stack in stacks:
        print(f"| {stack} | {statistics.median(results[(stack, 'train')]):.1f} | "
              f"{statistics.median(results[(stack, 'fid')]):.1f} |")
    for what in ("train", "fid"):
        ratio = statistics.median(results[("current", what)]) / statistics.median(results[("legacy", what)])
        print(f"current / legacy, {what}: {ratio:.2f}")
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{s}/{w}": v for (s, w), v in results.items()} | {"args": vars(args)}, f, indent=2)


if __name__ == "__main__":
    main()
