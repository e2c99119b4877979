"""Latent-space tools: z from integer seeds (the same function the exported `generate` signature runs), spherical and
linear interpolation, one-dimension sweeps, and direction arithmetic.

z for a seed s is `tf.random.stateless_normal([z_dim], seed=[s, 0])` (Philox, deterministic across machines), so a
face shown anywhere with its seed can be regenerated anywhere.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def z_from_seeds_tf(seeds: tf.Tensor, z_dim: int) -> tf.Tensor:
    """Graph-side: int64 seeds [N] → float32 z [N, z_dim]."""
    seeds = tf.cast(seeds, tf.int64)
    return tf.map_fn(
        lambda s: tf.random.stateless_normal([z_dim], seed=tf.stack([s, tf.constant(0, tf.int64)])),
        seeds, fn_output_signature=tf.TensorSpec([z_dim], tf.float32))


def z_from_seeds(seeds, z_dim: int) -> np.ndarray:
    """int seeds → float32 z [N, z_dim] (numpy)."""
    seeds = np.atleast_1d(np.asarray(seeds, dtype=np.int64))
    return z_from_seeds_tf(tf.constant(seeds), z_dim).numpy()


def slerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical interpolation (White 2016, "Sampling Generative Networks"); falls back to lerp for parallel vectors.
    `t` may be a scalar or a vector of positions; returns [len(t), z_dim] for a vector."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t_arr = np.atleast_1d(np.asarray(t, np.float64))[:, None]
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    cos = np.clip(np.dot(z0, z1) / max(n0 * n1, 1e-12), -1.0, 1.0)
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        out = (1 - t_arr) * z0 + t_arr * z1
    else:
        out = (np.sin((1 - t_arr) * omega) * z0 + np.sin(t_arr * omega) * z1) / np.sin(omega)
    out = out.astype(np.float32)
    return out if np.ndim(t) else out[0]


def lerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    z0, z1 = np.asarray(z0, np.float32), np.asarray(z1, np.float32)
    t_arr = np.atleast_1d(np.asarray(t, np.float32))[:, None]
    out = (1 - t_arr) * z0 + t_arr * z1
    return out if np.ndim(t) else out[0]


def interpolate(z0: np.ndarray, z1: np.ndarray, steps: int, method: str = "slerp") -> np.ndarray:
    """`steps` points from z0 to z1 inclusive; the first row is exactly z0 and the last exactly z1."""
    if steps < 2:
        raise ValueError(f"steps={steps} must be at least 2")
    if method not in ("slerp", "lerp"):
        raise ValueError(f"method={method!r} must be 'slerp' or 'lerp'")
    t = np.linspace(0.0, 1.0, steps)
    path = (slerp if method == "slerp" else lerp)(z0, z1, t)
    path[0], path[-1] = z0, z1
    return path.astype(np.float32)


def sweep(z: np.ndarray, dim: int, steps: int, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Copies of z with one dimension swept linearly over [low, high] (carpedm20's `--visualize` option 1)."""
    z = np.asarray(z, np.float32)
    if not 0 <= dim < z.shape[-1]:
        raise ValueError(f"dim={dim} is outside 0..{z.shape[-1] - 1}")
    out = np.repeat(z[None], steps, axis=0)
    out[:, dim] = np.linspace(low, high, steps, dtype=np.float32)
    return out


def arithmetic(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """mean(A) − mean(B) + mean(C): the DCGAN paper's face arithmetic (§6.3), on groups of z vectors."""
    return (np.mean(np.atleast_2d(a), 0) - np.mean(np.atleast_2d(b), 0) + np.mean(np.atleast_2d(c), 0)).astype(
        np.float32)


def unit_direction(with_attr: np.ndarray, without_attr: np.ndarray) -> tuple[np.ndarray, float]:
    """(mean z(with) − mean z(without)) scaled to unit length, and the length it had."""
    d = np.mean(np.atleast_2d(with_attr), 0) - np.mean(np.atleast_2d(without_attr), 0)
    norm = float(np.linalg.norm(d))
    return (d / max(norm, 1e-12)).astype(np.float32), norm

