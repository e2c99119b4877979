"""Sampling and latent-space visualisations from a run directory or an exported SavedModel (`dcgan sample`,
`dcgan visualize`): grids with recorded seeds, slerp interpolation strips, animated GIF walks, one-dimension sweeps
(the named versions of carpedm20/DCGAN-tensorflow's `--visualize` options).

| mode          | carpedm20 option   | what it writes                                                          |
|---------------|--------------------|-------------------------------------------------------------------------|
| `grid`        | 0                  | one grid of faces (seeds recorded)                                      |
| `sweep`       | 1                  | one PNG: a row per seed, one z dimension swept across the row           |
| `sweep-gif`   | 2 (seeds), 3 (z=0) | one GIF per z dimension: it goes from -1 to 1, the rest of z stays      |
| `merged-gif`  | 4                  | one GIF, a 10×10 grid: cell i sweeps dimension i forth and back         |
| `gif`         | —                  | slerp walks through random points, side by side                         |
| `interpolate` | —                  | slerp strips between pairs of seeds                                     |
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dcgan import fileio, latent
from dcgan import images as imlib

MODES = ("grid", "interpolate", "gif", "sweep", "sweep-gif", "merged-gif")
CARPEDM20_OPTION = {"grid": "0", "sweep": "1", "sweep-gif": "2/3", "merged-gif": "4"}


@dataclass
class Sampler:
    """z → images in [-1, 1], whatever the source."""

    z_dim: int
    fn: Callable[[np.ndarray], np.ndarray]
    source: str
    description: str

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(np.asarray(z, np.float32)))


def load_sampler(source: str, use_ema: bool = True, checkpoint: str | None = None) -> Sampler:
    """A run directory (latest checkpoint, EMA generator when kept) or a SavedModel directory."""
    if fileio.exists(fileio.join(source, "saved_model.pb")):
        from dcgan.export import LoadedGenerator

        g = LoadedGenerator(source)
        return Sampler(g.z_dim, g.images, source, f"SavedModel {source}")
    from dcgan.run import is_run_dir, load_models

    if not is_run_dir(source):
        raise FileNotFoundError(f"{source!r} is neither a run directory (config.json + checkpoints/) "
                                "nor a SavedModel directory (saved_model.pb)")
    models = load_models(source, checkpoint=checkpoint, precision="float32")
    gen = models.sampling_generator if use_ema else models.generator

    def fn(z: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(gen(z[i:i + 256], training=False)) for i in range(0, len(z), 256)])

    step = int(models.step.numpy())
    return Sampler(models.config.model.z_dim, fn, source, f"run {source} at step {step}")


def _write_record(path: str, record: dict) -> str:
    meta = os.path.splitext(path)[0] + ".json"
    with open(meta, "w") as f:
        json.dump(record, f, indent=2)
    return meta


def sample(sampler: Sampler, n: int, seed: int, out: str, files_dir: str | None = None,
           ncols: int | None = None, seeds: Sequence[int] | None = None) -> dict:
    """Generate faces for seeds seed..seed+n-1 (or exactly `seeds`, when given); write a grid PNG (and one PNG per
    face when `files_dir`), plus a JSON record of the seeds beside the grid. Returns the record."""
    if seeds is None:
        if n <= 0:
            raise ValueError(f"n={n} must be positive")
        seeds = list(range(seed, seed + n))
    seeds = list(seeds)
    if not seeds:
        raise ValueError("no seeds to sample")
    z = latent.z_from_seeds(seeds, sampler.z_dim)
    images = imlib.to_uint8(sampler(z))
    record = {"source": sampler.description, "seeds": seeds, "z_from_seed": "tf.random.stateless_normal(seed=[s, 0])"}
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        imlib.save_image(imlib.make_grid(images, ncols=ncols), out)
        record["grid"] = out
        _write_record(out, record)
    if files_dir:
        os.makedirs(files_dir, exist_ok=True)
        record["files"] = []
        for s, img in zip(seeds, images):
            path = os.path.join(files_dir, f"seed_{s:08d}.png")
            imlib.save_image(img, path)
            record["files"].append(path)
        with open(os.path.join(files_dir, "seeds.json"), "w") as f:
            json.dump(record, f, indent=2)
    return record


def interpolation_strips(sampler: Sampler, seeds: list[int], steps: int, out: str, method: str = "slerp") -> dict:
    """One row per consecutive pair of seeds (a→b, c→d, ...), `steps` columns, ends exactly at the two faces."""
    if len(seeds) < 2 or len(seeds) % 2:
        raise ValueError("interpolate needs an even number (≥ 2) of seeds: pairs a,b[,c,d...]")
    z = latent.z_from_seeds(seeds, sampler.z_dim)
    rows = [latent.interpolate(z[i], z[i + 1], steps, method) for i in range(0, len(seeds), 2)]
    images = sampler(np.concatenate(rows))
    imlib.save_image(imlib.make_grid(images, ncols=steps), out)
    record = {"source": sampler.description, "mode": "interpolate", "method": method, "pairs":
              [seeds[i:i + 2] for i in range(0, len(seeds), 2)], "steps": steps, "output": out}
    _write_record(out, record)
    return record


def sweep_grid(sampler: Sampler, seeds: list[int], dim: int, steps: int, out: str, low: float = -2.0,
               high: float = 2.0) -> dict:
    """One row per seed; across the row dimension `dim` of its z goes from `low` to `high`."""
    z = latent.z_from_seeds(seeds, sampler.z_dim)
    images = sampler(np.concatenate([latent.sweep(zi, dim, steps, low, high) for zi in z]))
    imlib.save_image(imlib.make_grid(images, ncols=steps), out)
    record = {"source": sampler.description, "mode": "sweep", "seeds": seeds, "dim": dim, "steps": steps,
              "range": [low, high], "output": out}
    _write_record(out, record)
    return record


def walk_gif(sampler: Sampler, seeds: list[int], keyframes: int, steps: int, out: str, fps: int = 12,
             ncols: int | None = None) -> dict:
    """An animated GIF: each of the `seeds` starts a slerp walk through `keyframes` further random points and back;
    all walks play side by side as a grid."""
    if not seeds or fps <= 0 or keyframes < 0 or steps < 2:
        raise ValueError(f"walk_gif needs seeds, fps > 0, keyframes >= 0 and steps >= 2 (got {len(seeds)} seeds, "
                         f"fps={fps}, keyframes={keyframes}, steps={steps})")
    rng = np.random.default_rng(seeds[0])
    walks = []
    for s in seeds:
        points = [latent.z_from_seeds([s], sampler.z_dim)[0]]
        points += list(rng.standard_normal((keyframes, sampler.z_dim)).astype(np.float32))
        points.append(points[0])
        path = np.concatenate([latent.interpolate(a, b, steps)[:-1] for a, b in zip(points[:-1], points[1:])])
        walks.append(path)
    frames_z = np.stack(walks, axis=1)  # [frames, n_seeds, z_dim]
    flat = sampler(frames_z.reshape(-1, sampler.z_dim))
    flat = imlib.to_uint8(flat).reshape(frames_z.shape[0], len(seeds), *flat.shape[1:])
    frames = [Image.fromarray(imlib.make_grid(f, ncols=ncols)) for f in flat]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0, optimize=False)
    record = {"source": sampler.description, "mode": "gif", "seeds": seeds, "keyframes": keyframes,
              "steps": steps, "frames": len(frames), "output": out}
    _write_record(out, record)
    return record


def _base_z(sampler: Sampler, seeds: Sequence[int] | None) -> np.ndarray:
    """Base points of a sweep: the seeds' z, or the origin (carpedm20's option 3 / 4 start from z = 0)."""
    if seeds:
        return latent.z_from_seeds(list(seeds), sampler.z_dim)
    return np.zeros((1, sampler.z_dim), np.float32)


def _save_gif(frames: list[np.ndarray], out: str, fps: int) -> None:
    pictures = [Image.fromarray(f) for f in frames]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    pictures[0].save(out, save_all=True, append_images=pictures[1:], duration=int(1000 / fps), loop=0,
                     optimize=False)


def sweep_gifs(sampler: Sampler, seeds: Sequence[int] | None, dims: Sequence[int] | None, steps: int, out_dir: str,
               low: float = -1.0, high: float = 1.0, fps: int = 12) -> dict:
    """carpedm20's options 2/3: one GIF per z dimension (`dims`, default all), `steps` frames in which that dimension
    goes from `low` to `high` while the rest of z stays fixed: every seed's z side by side (option 2 draws a random
    base), or z = 0 when no seeds are given (option 3). Files: OUT_DIR/sweep_dim_NNN.gif."""
    dims = list(range(sampler.z_dim)) if dims is None else list(dims)
    bad = [d for d in dims if not 0 <= d < sampler.z_dim]
    if bad or not dims or steps < 2 or fps <= 0:
        raise ValueError(f"sweep-gif needs dimensions in 0..{sampler.z_dim - 1} (got {bad or dims}), steps >= 2 "
                         f"and fps > 0 (got steps={steps}, fps={fps})")
    base = _base_z(sampler, seeds)
    values = np.linspace(low, high, steps, dtype=np.float32)
    os.makedirs(out_dir, exist_ok=True)
    files = []
    for d in dims:
        z = np.repeat(base[None], steps, axis=0)  # [frames, bases, z_dim]
        z[:, :, d] = values[:, None]
        faces = imlib.to_uint8(sampler(z.reshape(-1, sampler.z_dim)))
        faces = faces.reshape(steps, len(base), *faces.shape[1:])
        path = os.path.join(out_dir, f"sweep_dim_{d:03d}.gif")
        _save_gif([imlib.make_grid(f) if len(base) > 1 else f[0] for f in faces], path, fps)
        files.append(path)
    record = {"source": sampler.description, "mode": "sweep-gif", "carpedm20_option": "2/3",
              "base": list(seeds) if seeds else "zero", "dims": dims, "steps": steps, "range": [low, high],
              "frames": steps, "files": files}
    with open(os.path.join(out_dir, "sweep_gifs.json"), "w") as f:
        json.dump(record, f, indent=2)
    return record


def merged_gif(sampler: Sampler, seed: int | None, steps: int, out: str, low: float = -1.0, high: float = 1.0,
               fps: int = 12, cells: int = 100) -> dict:
    """carpedm20's option 4: one GIF of a grid (10×10 for the first 100 dimensions): cell i shows the base z with
    dimension i swept from `low` to `high` and back (2·steps − 2 frames). Base: the seed's z, or z = 0 without one."""
    if steps < 2 or fps <= 0 or cells < 1:
        raise ValueError(f"merged-gif needs steps >= 2, fps > 0 and cells >= 1 (got {steps}, {fps}, {cells})")
    count = min(cells, sampler.z_dim)
    base = _base_z(sampler, [seed] if seed is not None else None)[0]
    values = np.linspace(low, high, steps, dtype=np.float32)
    z = np.repeat(np.repeat(base[None, None], steps, axis=0), count, axis=1)  # [steps, cells, z_dim]
    z[:, np.arange(count), np.arange(count)] = values[:, None]
    faces = imlib.to_uint8(sampler(z.reshape(-1, sampler.z_dim)))
    faces = faces.reshape(steps, count, *faces.shape[1:])
    ncols = int(np.ceil(np.sqrt(count)))
    forward = [imlib.make_grid(f, ncols=ncols) for f in faces]
    # Forth and back, as carpedm20's range(64) + range(63, -1, -1), without repeating the turning points (a GIF
    # writer merges equal consecutive frames): 2·steps − 2 frames that loop seamlessly.
    frames = forward + forward[-2:0:-1]
    _save_gif(frames, out, fps)
    record = {"source": sampler.description, "mode": "merged-gif", "carpedm20_option": "4",
              "base": seed if seed is not None else "zero", "cells": count, "grid": [ncols, -(-count // ncols)],
              "steps": steps, "range": [low, high], "frames": len(frames), "output": out}
    _write_record(out, record)
    return record

