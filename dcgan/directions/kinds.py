"""The four kinds of direction in z and how each is computed: `mean_difference` (mean z(with) − mean z(without)),
`boundary` (InterFaceGAN's linear boundary normal), `conditional` (the boundary normal with other attributes'
normals projected out) and `sefa` (closed-form factorization of G's first projection, unsupervised)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

KINDS = ("mean_difference", "boundary", "conditional", "sefa")
KIND_SUFFIX = {"mean_difference": "", "boundary": " · boundary", "conditional": " · conditional"}
DEFAULT_KIND = "mean_difference"  # the slider named after the attribute alone, the studio's first


# -- mean difference --------------------------------------------------------------------------------------------------
def fit_direction(z: np.ndarray, scores: np.ndarray, threshold: float = 0.5,
                  min_group: int = 10) -> tuple[np.ndarray, dict[str, Any]]:
    """Unit direction mean z(with) − mean z(without) for one attribute's scores [N]. When fewer than `min_group`
    samples fall on one side of the threshold, the top and bottom deciles by score stand in for with/without."""
    from dcgan.latent import unit_direction

    with_attr, without, split = _sides(scores, threshold, min_group)
    vector, norm = unit_direction(z[with_attr], z[without])
    return vector, {"split": split, "with": int(with_attr.sum()), "without": int(without.sum()),
                    "raw_norm": round(norm, 4)}


# -- boundary, conditional and SeFa directions ------------------------------------------------------------------------
def _sides(scores: np.ndarray, threshold: float, min_group: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Masks (with, without) of the samples: by the threshold, or the top/bottom deciles by score when one side has
    fewer than `min_group` samples."""
    with_attr = scores >= threshold
    n_with = int(with_attr.sum())
    if n_with >= min_group and len(scores) - n_with >= min_group:
        return with_attr, ~with_attr, "threshold"
    k = max(min_group, len(scores) // 10)
    order = np.argsort(scores, kind="stable")
    with_attr = np.zeros(len(scores), bool)
    with_attr[order[-k:]] = True
    without = np.zeros(len(scores), bool)
    without[order[:k]] = True
    return with_attr, without, "deciles"


def fit_boundary(z: np.ndarray, scores: np.ndarray, threshold: float = 0.5, min_group: int = 10, l2: float = 1.0,
                 iterations: int = 50) -> tuple[np.ndarray, dict[str, Any]]:
    """InterFaceGAN's boundary: the unit normal n of a linear classifier w·z + b separating the samples that have
    the attribute (score ≥ threshold) from those that have not. Logistic regression fitted by Newton's method
    (exact, no learning rate), classes weighted to equal total weight, L2 penalty `l2` on w. Returns n and
    {split, with, without, accuracy (balanced, on the fit samples), offset = −b/|w| (where the boundary crosses the
    normal, in σ), iterations}."""
    with_attr, without, split = _sides(scores, threshold, min_group)
    keep = with_attr | without
    x = np.asarray(z[keep], np.float64)
    y = with_attr[keep].astype(np.float64)
    n, dim = x.shape
    weight = np.where(y > 0.5, n / (2.0 * max(y.sum(), 1.0)), n / (2.0 * max(n - y.sum(), 1.0)))
    xb = np.concatenate([x, np.ones((n, 1))], 1)
    penalty = np.full(dim + 1, float(l2))
    penalty[-1] = 0.0  # the bias is not penalised
    w = np.zeros(dim + 1)
    done = 0
    while done < iterations:
        done += 1
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        gradient = xb.T @ (weight * (p - y)) + penalty * w
        hessian = (xb * (weight * p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-7:
            break
    normal = w[:dim]
    norm = float(np.linalg.norm(normal))
    if norm < 1e-12:
        raise ValueError("the boundary is degenerate: the two sides cannot be told apart linearly in z")
    predicted = xb @ w >= 0
    tpr = float(np.mean(predicted[y > 0.5])) if (y > 0.5).any() else 0.0
    tnr = float(np.mean(~predicted[y < 0.5])) if (y < 0.5).any() else 0.0
    return (normal / norm).astype(np.float32), {
        "split": split, "with": int(with_attr.sum()), "without": int(without.sum()),
        "accuracy": round((tpr + tnr) / 2, 4), "offset": round(float(-w[-1] / norm), 4), "iterations": done,
        "l2": float(l2)}


def conditional_direction(primary: np.ndarray, fixed: Sequence[np.ndarray] | np.ndarray) -> tuple[np.ndarray, float]:
    """InterFaceGAN's conditional manipulation: `primary` with the span of the `fixed` normals projected out,
    scaled to unit length, and the cosine between it and `primary` (how much of the edit is left). Moving along it
    leaves every fixed attribute's linear score n_k·z unchanged. Raises ValueError when `primary` lies (nearly) in
    the span of the fixed normals."""
    primary = np.asarray(primary, np.float64)
    fixed_arr = np.asarray(fixed, np.float64).reshape(-1, primary.shape[0])
    if len(fixed_arr):
        basis, singular, _ = np.linalg.svd(fixed_arr.T, full_matrices=False)  # orthonormal basis of the span
        basis = basis[:, singular > 1e-8 * max(float(singular.max()), 1e-300)]
        residual = primary - basis @ (basis.T @ primary)
    else:
        residual = primary
    norm = float(np.linalg.norm(residual))
    if norm < 1e-6 * max(float(np.linalg.norm(primary)), 1e-12):
        raise ValueError("the direction lies in the span of the fixed attributes' normals: nothing is left to move")
    vector = residual / norm
    cosine = float(vector @ primary / max(float(np.linalg.norm(primary)), 1e-12))
    return vector.astype(np.float32), cosine


def sefa_directions(kernel: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """SeFa (closed-form factorization): the top-`k` unit eigenvectors of AᵀA and their eigenvalues, where A maps z
    to G's first feature map. `kernel` is that layer's Keras kernel, [z_dim, out] (y = z @ kernel, so A = kernelᵀ and
    AᵀA = kernel·kernelᵀ). Each vector's sign is fixed so that its largest-magnitude component is positive."""
    kernel = np.asarray(kernel, np.float64)
    values, vectors = np.linalg.eigh(kernel @ kernel.T)
    order = np.argsort(values)[::-1][:k]
    vectors = vectors[:, order].T
    signs = np.sign(vectors[np.arange(len(vectors)), np.argmax(np.abs(vectors), 1)])
    return (vectors * signs[:, None]).astype(np.float32), values[order]


def projection_kernel(module: Any, z_dim: int) -> np.ndarray:
    """The kernel of G's first projection in a loaded generator SavedModel, as [z_dim, out]: the Dense kernel
    [z_dim, out] (dcgan.model's `project`), or a first ConvTranspose kernel [k, k, out, z_dim] flattened to
    [z_dim, k·k·out]. Found among the module's variables by shape (a name with "project" wins a tie)."""
    candidates = []
    # A loaded SavedModel keeps the tracked list (dcgan.export.GeneratorModule.generator_variables), not tf.Module's
    # `variables` property.
    variables = getattr(module, "generator_variables", None) or getattr(module, "variables", ())
    for v in variables:
        shape = tuple(v.shape)
        if len(shape) == 2 and shape[0] == z_dim:
            candidates.append((v, np.asarray(v.numpy())))
        elif len(shape) == 4 and shape[-1] == z_dim:
            candidates.append((v, np.transpose(np.asarray(v.numpy()), (3, 0, 1, 2)).reshape(z_dim, -1)))
    if not candidates:
        raise ValueError(f"no first-layer kernel taking z of length {z_dim} among the SavedModel's variables")
    named = [c for c in candidates if "project" in c[0].name]
    return (named or candidates)[0][1]
