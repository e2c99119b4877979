"""The direction kinds of dcgan.directions on synthetic data where the right answer is known: the boundary recovers a
planted linear attribute's normal (where the mean difference is pulled off by correlated z), the conditional
direction is orthogonal to the fixed normals, SeFa recovers the top singular vectors of a known matrix, and the
success/leakage matrix is computed from measured effects. No TensorFlow: numpy only, milliseconds."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan import directions as d


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_boundary_recovers_the_normal_of_a_linear_attribute():
    rng = np.random.default_rng(0)
    dim = 20
    n = _unit(rng.standard_normal(dim))
    z = rng.standard_normal((3000, dim))
    scores = 1 / (1 + np.exp(-(4 * (z @ n) - 1.0)))  # a linear attribute: has it where n·z > 0.25
    normal, info = d.fit_boundary(z, scores)
    assert np.linalg.norm(normal) == pytest.approx(1.0, abs=1e-5)
    assert normal @ n > 0.99, f"cosine to the planted normal {normal @ n:.4f}"
    assert info["accuracy"] > 0.97 and info["split"] == "threshold"
    assert info["offset"] == pytest.approx(0.25, abs=0.1), "the boundary crosses the normal near n·z = 0.25"


def test_boundary_beats_the_mean_difference_when_the_samples_are_not_isotropic():
    # Samples labelled by n·z, but z correlated along another axis: the mean difference tilts towards the
    # correlated axis, the boundary's normal does not (the reason InterFaceGAN fits a classifier).
    rng = np.random.default_rng(1)
    dim = 10
    n = np.eye(dim)[0]
    mix = np.eye(dim)
    mix[1, 0] = mix[0, 1] = 0.8
    z = rng.standard_normal((4000, dim)) @ mix
    scores = (z @ n > 0).astype(float)
    normal, _ = d.fit_boundary(z, scores)
    mean_difference, _ = d.fit_direction(z, scores)
    assert normal @ n > 0.98
    assert mean_difference @ n < 0.9, "the planted case must tilt the mean difference"


def test_boundary_uses_deciles_when_one_side_is_nearly_empty():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((1000, 8))
    normal, info = d.fit_boundary(z, 1 / (1 + np.exp(-(z[:, 3] - 6))), min_group=10)  # almost never ≥ 0.5
    assert info["split"] == "deciles" and info["with"] == info["without"] == 100
    assert normal[3] > 0.95


def test_conditional_direction_is_orthogonal_to_the_fixed_normals_and_keeps_the_rest():
    rng = np.random.default_rng(3)
    dim = 30
    primary = _unit(rng.standard_normal(dim))
    fixed = [_unit(primary + rng.standard_normal(dim)) for _ in range(3)]  # correlated with the primary
    vector, cosine = d.conditional_direction(primary, fixed)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    for f in fixed:
        assert abs(vector @ f) < 1e-5
    assert 0 < cosine < 1 and vector @ primary == pytest.approx(cosine, abs=1e-5)
    # The projection: primary = (part in the span of the fixed) + cosine · vector.
    basis = np.linalg.qr(np.stack(fixed, 1))[0]
    rest = primary - basis @ (basis.T @ primary)
    np.testing.assert_allclose(vector, rest / np.linalg.norm(rest), atol=1e-5)
    # Nothing fixed: the boundary itself; a primary inside the span: nothing left to move.
    np.testing.assert_allclose(d.conditional_direction(primary, [])[0], primary, atol=1e-6)
    with pytest.raises(ValueError, match="nothing is left to move"):
        d.conditional_direction(fixed[0] + 2 * fixed[1], fixed)


def test_moving_along_the_conditional_direction_leaves_fixed_linear_attributes_unchanged():
    rng = np.random.default_rng(4)
    dim = 16
    a, b = _unit(rng.standard_normal(dim)), _unit(rng.standard_normal(dim))
    b = _unit(b + 1.5 * a)  # b entangled with a
    z = rng.standard_normal((500, dim))
    vector, _ = d.conditional_direction(a, [b])
    moved = z + 2.0 * vector
    np.testing.assert_allclose(moved @ b, z @ b, atol=1e-5)  # b's linear score does not move
    assert np.mean(moved @ a - z @ a) > 1.0  # a's does
    assert np.mean((z + 2.0 * a) @ b - z @ b) > 1.0  # while moving along a's own normal drags b along


def test_sefa_recovers_the_top_singular_vectors_of_a_known_matrix():
    rng = np.random.default_rng(5)
    dim, out = 12, 40
    u = np.linalg.qr(rng.standard_normal((dim, dim)))[0]  # the planted right singular vectors of A
    singular = np.array([9.0, 5.0, 3.0] + [0.5] * (dim - 3))
    v = np.linalg.qr(rng.standard_normal((out, dim)))[0]
    a = v @ np.diag(singular) @ u.T  # A: z (dim) -> features (out)
    kernel = a.T  # Keras Dense kernel: y = z @ kernel
    vectors, eigenvalues = d.sefa_directions(kernel, 3)
    assert vectors.shape == (3, dim)
    np.testing.assert_allclose(eigenvalues, singular[:3] ** 2, rtol=1e-6)
    for k in range(3):
        assert abs(vectors[k] @ u[:, k]) == pytest.approx(1.0, abs=1e-5)
        assert vectors[k][np.argmax(np.abs(vectors[k]))] > 0, "sign fixed: largest component positive"


class _Variable:
    def __init__(self, name, value):
        self.name, self._value, self.shape = name, value, value.shape

    def numpy(self):
        return self._value


def test_projection_kernel_is_found_by_shape_and_name():
    dense = np.arange(6 * 8, dtype=np.float32).reshape(6, 8)
    module = type("M", (), {"generator_variables": [_Variable("deconv1/kernel:0", np.zeros((4, 4, 3, 8))),
                                          _Variable("project_bn/gamma:0", np.ones(8)),
                                          _Variable("project/kernel:0", dense)]})()
    np.testing.assert_array_equal(d.projection_kernel(module, 6), dense)
    conv = np.random.default_rng(0).standard_normal((4, 4, 5, 6))  # a ConvTranspose from z as 1x1x6
    module = type("M", (), {"variables": [_Variable("first/kernel:0", conv)]})()
    kernel = d.projection_kernel(module, 6)
    assert kernel.shape == (6, 4 * 4 * 5)
    np.testing.assert_allclose(kernel[2], conv[..., 2].reshape(-1))
    with pytest.raises(ValueError, match="no first-layer kernel"):
        d.projection_kernel(module, 7)
