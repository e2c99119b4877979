"""Projection ("bring your own face") measured on held-out faces: how close the `project` signature's reconstruction
is, against the best of many random samples, and how long it takes per image on this CPU.

For each model (a run directory: exported here with its discriminator, once per projection setting) and each setting:

* distance per held-out image, two ways: per-pixel MSE (images in [-1, 1]) and Inception pool3 cosine distance
  (1 - cos, the FID network of dcgan.metrics, local weights);
* the same distances for the best of `--random` random samples z ~ N(0, 1): the exact MSE minimum over all of them,
  and the Inception minimum over the `--shortlist` samples with the lowest MSE for that image (computing Inception
  features of every random sample costs ~20 minutes on 2 cores);
* ratio = projection / random-best (goal <= 0.5), mean over the images;
* seconds per image: each image projected alone (batch 1) after one warm-up call, median.

    .venv/bin/python bench/projection.py --run runs/quick/artifacts/Trainer/model_run/3 \\
        --data runs/quick/artifacts/FaceExampleGen/examples/1 --n 24

The machine's load average is printed beside the numbers: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

SETTINGS = {
    "default": {},
    "restarts-4x60": {"restarts": 4, "steps": 60},
    "pixels-only": {"feature_weight": 0.0},
    "fast": {"candidates": 32, "restarts": 2, "steps": 30},
    "features-x4": {"feature_weight": 2.0},
}


def held_out_images(data: str, n: int, size: int) -> np.ndarray:
    """The first `n` images of the eval split (or image set) at the model's size, uint8."""
    from dcgan import images as imlib
    from dcgan.metrics.features import resolve_image_set

    image_set = resolve_image_set(data, "eval")
    out = []
    for _, image in image_set.iter_images():
        out.append(imlib.resize(image, size))
        if len(out) == n:
            break
    return np.stack(out)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return 1.0 - np.sum(a * b, axis=-1)


def random_best(generator, x: np.ndarray, count: int, shortlist: int, seed: int = 1234) -> dict:
    """Exact best MSE over `count` random samples per image, and the `shortlist` lowest-MSE samples' pixels."""
    from dcgan import images as imlib

    rng = np.random.default_rng(seed)
    best = np.full(len(x), np.inf)
    keep_mse = np.full((len(x), 0), np.inf)
    keep_img = np.zeros((len(x), 0, *x.shape[1:]), np.float32)
    for start in range(0, count, 1000):
        z = rng.standard_normal((min(1000, count - start), generator.z_dim)).astype(np.float32)
        images = generator.images(z)
        mse = ((images[None] - x[:, None]) ** 2).mean(axis=(2, 3, 4))  # [n, chunk]
        best = np.minimum(best, mse.min(axis=1))
        all_mse = np.concatenate([keep_mse, mse], axis=1)
        order = np.argsort(all_mse, axis=1)[:, :shortlist]
        pool = np.concatenate([keep_img, np.broadcast_to(images[None], (len(x), *images.shape))], axis=1)
        keep_mse = np.take_along_axis(all_mse, order, axis=1)
        keep_img = np.stack([pool[i, order[i]] for i in range(len(x))])
    return {"mse": best, "shortlist": imlib.to_uint8(keep_img)}


def measure(run: str, data: str, n: int, count: int, shortlist: int, settings: list[str],
            grid_path: str | None = None) -> list[dict]:
    from dcgan import images as imlib
    from dcgan.export import LoadedGenerator, export_run
    from dcgan.metrics.inception import get_extractor
    from dcgan.projection import ProjectionConfig, to_model_range

    extractor = get_extractor()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-projection-") as tmp:
        base = None
        for name in settings:
            config = ProjectionConfig(**SETTINGS[name]).validate()
            path = export_run(run, os.path.join(tmp, name), projection=config)
            generator = LoadedGenerator(path)
            size = generator.metadata["image_shape"][0]
            if base is None:
                originals = held_out_images(data, n, size)
                x = to_model_range(originals)
                start = time.perf_counter()
                base = random_best(generator, x, count, shortlist)
                random_s = time.perf_counter() - start
                f_orig = extractor(originals)
                f_short = extractor(base["shortlist"].reshape(-1, *originals.shape[1:]))
                f_short = f_short.reshape(n, shortlist, -1)
                base["inception"] = np.min(cosine_distance(f_orig[:, None], f_short), axis=1)
            generator.project(x[:1])  # warm-up: the first call traces and optimises the graph
            times, z, recon = [], [], []
            for i in range(n):
                start = time.perf_counter()
                out = generator.project(x[i:i + 1])
                times.append(time.perf_counter() - start)
                z.append(out["z"][0])
                recon.append(out["images"][0])
            recon = np.stack(recon)
            mse = ((recon - x) ** 2).mean(axis=(1, 2, 3))
            f_proj = extractor(imlib.to_uint8(recon))
            inception = cosine_distance(f_orig, f_proj)
            rows.append({
                "model": run, "size": size, "setting": name, "projection": config.to_dict(), "n": n,
                "mse": float(mse.mean()), "mse_random_best": float(base["mse"].mean()),
                "mse_ratio": float(np.mean(mse / base["mse"])),
                "inception": float(inception.mean()), "inception_random_best": float(base["inception"].mean()),
                "inception_ratio": float(np.mean(inception / base["inception"])),
                "s_per_image": statistics.median(times), "random_samples": count, "random_s": random_s,
                "z_norm": float(np.mean(np.linalg.norm(np.stack(z), axis=1))), "load": os.getloadavg()[0],
            })
            print(_row(rows[-1]), flush=True)
            if grid_path and name == settings[0]:  # rows: held-out faces, projections, best random samples
                k = min(8, n)
                grid = np.concatenate([originals[:k], imlib.to_uint8(recon[:k]), base["shortlist"][:k, 0]])
                imlib.save_image(imlib.make_grid(grid, ncols=k), grid_path)
                rows[-1]["grid"] = grid_path
    return rows


HEADER = ("| model | setting | MSE proj | MSE best of random | ratio | Inception cos proj | best of random | ratio "
          "| s/image | load |\n|---|---|---|---|---|---|---|---|---|---|")


def _row(r: dict) -> str:
    return (f"| {r['size']}x{r['size']} | {r['setting']} | {r['mse']:.4f} | {r['mse_random_best']:.4f} | "
            f"{r['mse_ratio']:.2f} | {r['inception']:.3f} | {r['inception_random_best']:.3f} | "
            f"{r['inception_ratio']:.2f} | {r['s_per_image']:.2f} | {r['load']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="run directory (repeat for several models)")
    parser.add_argument("--data", action="append", required=True,
                        help="held-out faces per --run: an Examples directory (its eval split) or images")
    parser.add_argument("--n", type=int, default=24, help="held-out images (default 24)")
    parser.add_argument("--random", type=int, default=10_000, help="random samples to beat (default 10000)")
    parser.add_argument("--shortlist", type=int, default=10, help="lowest-MSE random samples scored by Inception")
    parser.add_argument("--settings", default="default,pixels-only,fast", help=f"of {sorted(SETTINGS)}")
    parser.add_argument("--out", help="also write the rows as JSON here")
    parser.add_argument("--grid", help="write a picture per model here (PREFIX-<i>.png): held-out faces, their "
                                       "projections, the best random samples")
    args = parser.parse_args()
    if len(args.data) != len(args.run):
        parser.error("give one --data per --run")
    from dcgan.runtime import machine_line

    print(machine_line(), flush=True)
    print(HEADER)
    rows = []
    for i, (run, data) in enumerate(zip(args.run, args.data)):
        grid = f"{args.grid}-{i}.png" if args.grid else None
        rows += measure(run, data, args.n, args.random, args.shortlist, args.settings.split(","), grid)
    print(f"load average at end: {os.getloadavg()}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
