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


def test_quality_matrix_from_measured_effects_on_a_linear_world():
    """Identity "generator", two linear attributes entangled with each other: the mean difference of A drags B along
    (leakage), the conditional direction of A with B fixed does not; success and leakage read from the effects."""
    rng = np.random.default_rng(6)
    dim = 12
    a = _unit(rng.standard_normal(dim))
    b = _unit(_unit(rng.standard_normal(dim)) + 1.2 * a)
    names = ["A", "B"]

    def score(z):
        return np.stack([1 / (1 + np.exp(-8 * (z @ a - 0.5))), 1 / (1 + np.exp(-8 * (z @ b - 0.5)))], 1)

    z_fit = rng.standard_normal((4000, dim))
    s = score(z_fit)
    normal_a, _ = d.fit_boundary(z_fit, s[:, 0])
    normal_b, _ = d.fit_boundary(z_fit, s[:, 1])
    conditional_a, _ = d.conditional_direction(normal_a, [normal_b])
    mean_a, _ = d.fit_direction(z_fit, s[:, 0])
    vectors = np.stack([mean_a, normal_a, conditional_a])
    fresh = rng.standard_normal((2000, dim)).astype(np.float32)
    effects = d.measure_effect(lambda x: x, score, fresh, vectors, (0.0, 2.0, 3.0), names, 0.5, [0, 0, 0])
    doc = {"config": {"reliable_accuracy": 0.8},
           "attributes": {"A": {"classifier": {"balanced_accuracy": 0.95}},
                          "B": {"classifier": {"balanced_accuracy": 0.9}}},
           "directions": {"A": {"kind": "mean_difference", "attribute": "A", "effect": effects[0]},
                          "A · boundary": {"kind": "boundary", "attribute": "A", "effect": effects[1]},
                          "A · conditional": {"kind": "conditional", "attribute": "A", "effect": effects[2]}}}
    table = d.quality_table(doc, amount=2.0)
    row = table["rows"]["A"]
    assert table["judged"] == ["A", "B"] and set(row) == {"mean_difference", "boundary", "conditional"}
    assert row["boundary"]["before"] < 0.35 and row["boundary"]["success"] > 0.9
    assert row["mean_difference"]["leakage"] > 0.2, row  # B's prevalence jumps with A's mean difference
    assert row["conditional"]["leakage"] < 0.05, row
    text = d.format_quality(table)
    assert "conditional" in text and text.splitlines()[3].startswith("A ")
    # A is exactly linear in z here (z·a > 0.5), so its boundary normal reaches the linear ceiling
    assert table["linear_ceiling"]["A"] == pytest.approx(row["boundary"]["success"], abs=0.03)
    assert f"{table['linear_ceiling']['A']:.2f}" in text.splitlines()[3]
    with pytest.raises(ValueError, match="quality needs 0 and"):
        d.direction_quality(effects[0], "A", names, amount=1.0)


def test_linear_ceiling_is_the_best_a_unit_step_can_do_on_a_linear_attribute():
    # p = 0.5: the boundary is at 0, a +2σ step leaves Φ(2) = 0.977 above it
    assert d.linear_ceiling(0.5, 2.0) == pytest.approx(0.97725, abs=1e-4)
    # 0.9 at +2σ needs p >= 1 - Φ(2 - Φ⁻¹(0.9)) = 0.236
    assert d.linear_ceiling(0.24, 2.0) > 0.9 > d.linear_ceiling(0.23, 2.0)
    assert d.linear_ceiling(0.05, 2.0) == pytest.approx(0.6388, abs=1e-3)  # a 5 % attribute cannot reach 0.9
    assert d.linear_ceiling(0.0, 2.0) == 0.0 and d.linear_ceiling(1.0, 2.0) == 1.0
    rng = np.random.default_rng(0)  # and a simulation agrees: threshold 1.645 (p = 0.05), every z moved by 2
    z = rng.standard_normal(200_000)
    assert np.mean(z + 2.0 > 1.6449) == pytest.approx(d.linear_ceiling(0.05, 2.0), abs=0.005)


def test_an_unreliable_attribute_is_neither_a_row_nor_judged_for_leakage():
    effect = {"amounts": [0.0, 2.0], "prevalence": {"A": [0.1, 0.95], "B": [0.5, 0.9], "C": [0.2, 0.3]}}
    doc = {"attributes": {"A": {"classifier": {"balanced_accuracy": 0.9}},
                          "B": {"classifier": {"balanced_accuracy": 0.6}},
                          "C": {"classifier": {"balanced_accuracy": 0.85}}},
           "directions": {"A": {"kind": "mean_difference", "attribute": "A", "effect": effect},
                          "B": {"kind": "mean_difference", "attribute": "B", "effect": effect},
                          "SeFa 1": {"kind": "sefa", "attribute": None, "effect": effect}}}
    table = d.quality_table(doc)
    assert list(table["rows"]) == ["A", "C"]
    q = table["rows"]["A"]["mean_difference"]
    assert q["success"] == 0.95 and q["leakage"] == pytest.approx(0.1)  # only C judged; B's classifier is 0.6
    assert table["sefa"]["SeFa 1"]["largest_leaks"] == {"A": pytest.approx(0.85), "C": pytest.approx(0.1)}
