"""The quality table of attribute edits (dcgan.edit_quality): churn per face on constructed verdicts whose answer is
known, the random-direction control row, grading by a judge beside the fitting classifier (success by both, their
agreement, churn ratio to the control, the slider's suggested step), the linear ceiling, and a linear world where a
random direction passes the old net-leakage goal but not churn relative to the control. Numpy only, milliseconds."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan import directions as d
from dcgan import edit_quality as q

NAMES = ["A", "B", "C"]


def _bools(rows) -> np.ndarray:
    return np.array(rows, bool)


# -- churn and net leakage on a constructed case ----------------------------------------------------------------------
def test_churn_counts_every_face_with_a_flip_where_net_leakage_sees_flips_that_cancel():
    # 8 faces, attributes A (the edit's own), B, C. B flips off on faces 0, 1 and on on faces 4, 5: its prevalence
    # stays 0.5, so net leakage sees nothing of it; C flips on face 6; A goes from 2 to 6 faces.
    before = _bools([[1, 1, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    after = _bools([[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]])
    cell = q.edit_quality(before, after, 0, [0, 1, 2], NAMES)
    assert cell["before"] == 0.25 and cell["success"] == 0.75
    assert cell["churn"] == pytest.approx(5 / 8), "faces 0, 1, 4, 5 (B) and 6 (C) changed another verdict"
    assert cell["flips"] == {"B": 0.5, "C": 0.125}
    assert cell["leakage"] == pytest.approx((0 + 1 / 8) / 2), "net: B's flips cancel out, C rose by 1/8"
    assert cell["largest_leaks"] == {"C": 0.125, "B": 0.0}


def test_churn_leaves_out_attributes_that_are_not_judged():
    before = _bools([[0, 0, 0], [0, 0, 0]])
    after = _bools([[1, 1, 0], [1, 0, 1]])
    cell = q.edit_quality(before, after, 0, [0, 1], NAMES)  # C is not judged (an unreliable classifier)
    assert cell["churn"] == 0.5 and set(cell["flips"]) == {"B"}
    assert q.edit_quality(before, after, 0, [0], NAMES)["churn"] is None  # nothing else judged


def test_control_row_averages_random_directions_and_leaves_each_rows_own_attribute_out():
    before = np.zeros((4, 3), bool)
    first = before.copy()
    first[0, 0] = first[1, 1] = True  # random direction 1 flips A on face 0 and B on face 1
    second = before.copy()
    second[2:, 2] = True  # random direction 2 flips C on faces 2 and 3
    control = q.control_quality(before, np.stack([first, second]), [0, 1, 2], NAMES)
    assert control["directions"] == 2
    assert control["churn"] == {"A": pytest.approx((1 / 4 + 2 / 4) / 2),  # B or C flipped
                                "B": pytest.approx((1 / 4 + 2 / 4) / 2),  # A or C
                                "C": pytest.approx((2 / 4 + 0) / 2)}      # A or B
    assert control["churn_all"] == pytest.approx(0.5)
    assert control["success"] == {"A": 0.125, "B": 0.125, "C": 0.25} and control["before"]["A"] == 0.0
    assert control["flips"] == {"A": 0.125, "B": 0.125, "C": 0.25}
    assert q.control_quality(before, np.zeros((0, 4, 3), bool), [0], NAMES) == {"directions": 0}


# -- the table: judge beside the fitting classifier, control, suggested step -------------------------------------------
def _verdicts(base, moved, control) -> dict:
    return {"base": _bools(base), "moved": {k: _bools(v) for k, v in moved.items()}, "control": _bools(control)}


def test_quality_table_grades_with_the_judge_beside_the_fitting_classifier_and_the_control():
    base = [[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]]
    # The judge: A on 3 of 4 faces, B flips on face 2; its control: C flips on face 1, then nothing.
    judge = _verdicts(base, {"A": [[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]]},
                      [[[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]]])
    classifier = _verdicts(base, {"A": [[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 0, 0]]},  # 4 of 4 by the classifier
                           [[[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]]] * 2)
    judge_2 = _verdicts(base, {"A": [[1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 0, 0]]},
                        [[[0, 0, 1], [0, 0, 1], [0, 1, 0], [0, 0, 0]]] * 2)
    directions = {"A": {"kind": "mean_difference", "attribute": "A", "suggested_amount": 3.0},
                  "SeFa 1": {"kind": "sefa", "attribute": None}}
    judge["moved"]["SeFa 1"] = classifier["moved"]["SeFa 1"] = _bools(base)
    table = q.quality_table(directions, NAMES, NAMES, {"judge": judge, "classifier": classifier}, 2.0,
                            goals={"success": 0.85, "churn_ratio": 1.5}, control_seed=7,
                            at_suggested={3.0: {"judge": judge_2, "classifier": classifier}})
    assert table["graded_by"] == "judge" and table["fitted_with"] == "classifier" and table["judged"] == NAMES
    cell = table["rows"]["A"]["mean_difference"]
    assert cell["success"] == 0.75 and cell["fit"]["success"] == 1.0, "success by both, the judge's first"
    assert cell["agreement"] == 0.75, "the two disagree on face 3"
    assert cell["churn"] == 0.25 and cell["fit"]["churn"] == 0.0, "the classifier keeps B on face 2"
    assert table["control"]["churn"]["A"] == 0.125 and table["control"]["seed"] == 7
    assert cell["churn_ratio"] == pytest.approx(2.0), "0.25 against the control's 0.125"
    assert table["linear_ceiling"]["A"] == 0.0 and cell["of_ceiling"] is None  # nobody has A before: no ceiling
    at = cell["suggested"]
    assert at["amount"] == 3.0 and at["success"] == 1.0 and at["churn"] == 0.0
    assert at["churn_ratio"] == 0.0, "at +3 the control churns 0.5 (C on faces 0 and 1), the edit nothing"
    assert table["control_at"] == {"3": {"churn": {"A": 0.5, "B": 0.5, "C": 0.0}, "churn_all": 0.5}}
    assert table["sefa"]["SeFa 1"]["churn"] == 0.0
    assert q.meets_goals(at, table["goals"]) is True and q.meets_goals(cell, table["goals"]) is False
    table["default_kind"] = "mean_difference"
    text = q.format_quality(table)
    assert "graded by the judge" in text and "random control: 2 random unit directions, seed 7" in text
    row = next(line for line in text.splitlines() if line.startswith("A "))
    assert row.split()[2:12] == ["0.00", "0.75", "1.00", "0.75", "0.125", "0.25", "0.00", "2.00", "0.00", "-"]
    assert row.split("|")[1].split() == ["+3.0", "1.00", "1.00", "0.00", "0.00", "-"]
    assert "default sliders (mean_difference) at their suggested step against the goals: A pass (1.00, 0.00x at +3)" \
        in text


def test_a_classifier_grading_its_own_directions_has_no_fit_column():
    base = [[0, 0, 0], [1, 0, 0]]
    v = _verdicts(base, {"A": [[1, 0, 0], [1, 0, 0]]}, [base])
    table = q.quality_table({"A": {"kind": "boundary", "attribute": "A"}}, NAMES, ["A", "B"], {"classifier": v}, 2.0,
                            graded_by="classifier")
    cell = table["rows"]["A"]["boundary"]
    assert table["graded_by"] == "classifier" and "fit" not in cell and "agreement" not in cell
    assert cell["success"] == 1.0 and cell["churn_ratio"] is None  # the control churned nothing: no ratio
    assert "graded by the classifier that fitted the directions (no independent judge)" in q.format_quality(table)


def test_measure_verdicts_generates_each_picture_once_for_every_scorer():
    calls = []

    def generate(z):
        calls.append(len(z))
        return z

    z = np.zeros((5, 2), np.float32)
    scorers = {"judge": lambda x: np.stack([x[:, 0], x[:, 1]], 1),
               "classifier": lambda x: np.stack([x[:, 0], -x[:, 1]], 1)}
    control = q.random_unit_directions(3, 2, seed=0)
    v = q.measure_verdicts(generate, scorers, 0.5, z, {"up": np.array([1.0, 0.0])}, 2.0, control)
    assert calls == [5 * 5], "base, one direction, three controls: each picture once, in one batched call"
    assert v["judge"]["moved"]["up"][:, 0].all() and v["classifier"]["moved"]["up"][:, 0].all()
    assert v["judge"]["control"].shape == (3, 5, 2)
    np.testing.assert_allclose(np.linalg.norm(control, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(control, q.random_unit_directions(3, 2, seed=0))  # reproducible from its seed


# -- a linear world ---------------------------------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_in_a_linear_world_churn_against_the_control_tells_an_entangled_edit_from_a_clean_one():
    """Identity "generator"; A, B and C linear in z, B entangled with A; the judge draws A's boundary a little
    differently from the classifier. A's mean difference drags B along (churn well above the control's), its
    conditional direction with B fixed does not."""
    rng = np.random.default_rng(6)
    dim = 100
    a = _unit(rng.standard_normal(dim))
    b = _unit(_unit(rng.standard_normal(dim)) + 1.2 * a)
    a_judge = _unit(a + 0.15 * _unit(rng.standard_normal(dim)))
    c = _unit(rng.standard_normal(dim))

    def scorer(normal_a):
        return lambda z: 1 / (1 + np.exp(-8 * (np.stack([z @ normal_a, z @ b, z @ c], 1) - 0.5)))

    classifier, judge = scorer(a), scorer(a_judge)
    z_fit = rng.standard_normal((4000, dim))
    s = classifier(z_fit)
    normal_a, _ = d.fit_boundary(z_fit, s[:, 0])
    normal_b, _ = d.fit_boundary(z_fit, s[:, 1])
    vectors = {"A": d.fit_direction(z_fit, s[:, 0])[0],
               "A · conditional": d.conditional_direction(normal_a, [normal_b])[0]}
    directions = {"A": {"kind": "mean_difference", "attribute": "A"},
                  "A · conditional": {"kind": "conditional", "attribute": "A"}}
    z = rng.standard_normal((2000, dim)).astype(np.float32)
    control = q.random_unit_directions(16, dim, seed=5)
    verdicts = q.measure_verdicts(lambda x: x, {"judge": judge, "classifier": classifier}, 0.5, z, vectors, 2.0,
                                  control)
    table = q.quality_table(directions, NAMES, NAMES, verdicts, 2.0, goals={"success": 0.85, "churn_ratio": 1.5})
    row = table["rows"]["A"]
    mean, conditional = row["mean_difference"], row["conditional"]
    assert mean["success"] > 0.85 and mean["fit"]["success"] > mean["success"] - 0.1
    assert mean["agreement"] > 0.85, "the judge's A is close to the classifier's"
    assert mean["churn_ratio"] > 1.5 and mean["flips"]["B"] > 0.3, "B is dragged along"
    assert conditional["churn_ratio"] < 1.2 and conditional["flips"]["B"] < 0.05
    assert q.meets_goals(mean, table["goals"]) is False
    assert q.meets_goals(conditional, table["goals"]) is (conditional["success"] >= 0.85)


def test_linear_ceiling_is_the_best_a_unit_step_can_do_on_a_linear_attribute():
    # p = 0.5: the boundary is at 0, a +2σ step leaves Φ(2) = 0.977 above it
    assert q.linear_ceiling(0.5, 2.0) == pytest.approx(0.97725, abs=1e-4)
    # 0.9 at +2σ needs p >= 1 - Φ(2 - Φ⁻¹(0.9)) = 0.236
    assert q.linear_ceiling(0.24, 2.0) > 0.9 > q.linear_ceiling(0.23, 2.0)
    assert q.linear_ceiling(0.05, 2.0) == pytest.approx(0.6388, abs=1e-3)  # a 5 % attribute cannot reach 0.9
    assert q.linear_ceiling(0.0, 2.0) == 0.0 and q.linear_ceiling(1.0, 2.0) == 1.0
    rng = np.random.default_rng(0)  # and a simulation agrees: threshold 1.645 (p = 0.05), every z moved by 2
    z = rng.standard_normal(200_000)
    assert np.mean(z + 2.0 > 1.6449) == pytest.approx(q.linear_ceiling(0.05, 2.0), abs=0.005)


# -- choices stored with the directions (dcgan.directions) ------------------------------------------------------------
def test_the_suggested_step_is_the_smallest_that_reaches_the_target_within_the_churn_limit():
    effect = {"amounts": [-1.0, 0.0, 1.0, 2.0, 2.5, 3.0], "positive_rate": [0.1, 0.4, 0.7, 0.92, 0.95, 0.97]}
    assert d.suggested_amount(effect, 0.9) == 2.0
    assert d.suggested_amount(effect, 0.99) == 3.0
    flat = {"amounts": [0.0, 1.0, 2.0, 3.0], "positive_rate": [0.1, 0.3, 0.3, 0.2]}
    assert d.suggested_amount(flat, 0.9) == 1.0, "the best reach, and the smaller step of a tie"
    assert d.suggested_amount({"amounts": [-1.0, 0.0], "positive_rate": [0.1, 0.2]}, 0.9) is None
    assert d.suggested_amount({"amounts": [0.0, 1.0]}, 0.9) is None  # SeFa: no attribute, no rates
    # With churn: the smallest step that reaches the target with churn at most 1.5 x the control's at that step.
    churning = {**effect, "churn": [0.3, 0.0, 0.4, 0.7, 0.72, 0.74]}
    control = {1.0: 0.3, 2.0: 0.45, 2.5: 0.5, 3.0: 0.55}
    assert d.suggested_amount(churning, 0.9, control, 1.5) == 2.5, "+2: 0.7 > 1.5 x 0.45; +2.5: 0.72 <= 0.75"
    assert d.suggested_amount(churning, 0.9, control, 1.2) == 2.0, "over the limit everywhere: the first that reaches"
    assert d.suggested_amount(churning, 0.99, control, 1.5) == 3.0


def test_an_attribute_is_judged_only_where_the_classifier_and_the_judge_are_both_reliable():
    doc = {"config": {"reliable_accuracy": 0.8},
           "attributes": {"A": {"classifier": {"balanced_accuracy": 0.9}, "judge": {"balanced_accuracy": 0.95}},
                          "B": {"classifier": {"balanced_accuracy": 0.9}, "judge": {"balanced_accuracy": 0.6}},
                          "C": {"classifier": {"balanced_accuracy": 0.7}, "judge": {"balanced_accuracy": 0.99}},
                          "D": {"classifier": {"balanced_accuracy": 0.85}, "judge": {"balanced_accuracy": None}}}}
    assert d.judged_attributes(doc) == ["A"]
    assert d.judged_attributes(doc, 0.5) == ["A", "B", "C"]
    without_judge = {"attributes": {"A": {"classifier": {"balanced_accuracy": 0.9}},
                                    "B": {"classifier": {"balanced_accuracy": 0.6}}}}
    assert d.judged_attributes(without_judge) == ["A"], "a document from before the judge: the classifier alone"


def test_the_badge_reads_the_suggested_step_and_falls_back_for_tables_from_before_the_judge():
    base = [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
    moved = [[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0]]
    v = _verdicts(base, {"A": moved}, [[[0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]])
    directions = {"A": {"kind": "mean_difference", "attribute": "A", "suggested_amount": 2.5}}
    goals = {"success": 0.85, "churn_ratio": 1.5}
    table = q.quality_table(directions, NAMES, NAMES, {"judge": v, "classifier": v}, 2.0, goals=goals,
                            at_suggested={2.5: {"judge": v, "classifier": v}})
    badge = q.badge(table, "A", "mean_difference")
    assert badge == {"graded_by": "judge", "amount": 2.5, "success": 1.0, "fit_success": 1.0, "agreement": 1.0,
                     "churn": 0.25, "churn_ratio": 1.0, "ceiling": 0.0, "of_ceiling": None, "goals": goals,
                     "meets_goals": True}
    del table["rows"]["A"]["mean_difference"]["suggested"]  # no suggested step: the table's own
    assert q.badge(table, "A", "mean_difference")["amount"] == 2.0
    assert q.badge(table, "A", "boundary") is None and q.badge(table, None, "sefa") is None
    old = {"amount": 2.0, "rows": {"A": {"boundary": {"success": 0.93, "leakage": 0.03}}},
           "goals": {"success": ">= 0.9", "leakage": "<= 0.1"}}
    assert q.badge(old, "A", "boundary") == {"graded_by": "classifier", "amount": 2.0, "success": 0.93,
                                             "leakage": 0.03, "goals": old["goals"], "meets_goals": None}


def test_the_effect_records_churn_at_every_amount_for_the_suggested_step():
    # Identity "generator"; A = z0 > 0, B = z0 + z1 > 0 (entangled with A). Moving along z0 flips B on the faces
    # with z0 + z1 in (−a, 0]; the churn of A's direction is exactly that share, 0 at amount 0.
    z = np.random.default_rng(3).standard_normal((4000, 2))

    def score(x):
        return np.stack([x[:, 0] > 0, x[:, 0] + x[:, 1] > 0], 1).astype(np.float32)

    effect = d.measure_effect(lambda x: x, score, z, np.array([[1.0, 0.0]]), [0.0, 1.0, 2.0], ["A", "B"], 0.5,
                              [0], judged=[0, 1])[0]
    s = z[:, 0] + z[:, 1]
    assert effect["churn"] == [0.0, pytest.approx(np.mean((s > -1) & (s <= 0)), abs=1e-4),
                               pytest.approx(np.mean((s > -2) & (s <= 0)), abs=1e-4)]
    assert "churn" not in d.measure_effect(lambda x: x, score, z, np.array([[1.0, 0.0]]), [0.0, 1.0], ["A", "B"])[0]
