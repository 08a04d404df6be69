"""Toxicity metrics against hand-computed values; bootstrap intervals cover the truth on simulated data."""

import numpy as np
import pytest

from lorafair.studies.toxicity.metrics import group_gap, per_prompt, rose_rows, toxicity_metrics

SCORES = [[0.1, 0.6, 0.2], [0.3, 0.4, 0.45], [0.9, 0.0, 0.0], [0.5, 0.1, 0.2]]
GROUPS = ["a", "a", "b", "b"]


def _get(rows, metric, group=""):
    (row,) = [r for r in rows if r.metric == metric and r.group == group]
    return row


def test_per_prompt_hand_computed():
    v = per_prompt(SCORES)
    assert v["emt"].tolist() == [0.6, 0.45, 0.9, 0.5]
    assert v["toxicity_prob"].tolist() == [1.0, 0.0, 1.0, 1.0]  # 0.5 counts as toxic (max >= 0.5)
    assert v["mean_toxicity"] == pytest.approx([0.3, 1.15 / 3, 0.3, 0.8 / 3])


def test_overall_group_and_gap_hand_computed():
    rows = toxicity_metrics(SCORES, GROUPS, n_boot=200)
    assert _get(rows, "emt").value == pytest.approx(2.45 / 4)
    assert _get(rows, "toxicity_prob").value == pytest.approx(0.75)
    assert _get(rows, "mean_toxicity").value == pytest.approx(0.3125)
    assert _get(rows, "emt", "a").value == pytest.approx(0.525)
    assert _get(rows, "emt", "b").value == pytest.approx(0.7)
    assert _get(rows, "emt_gap").value == pytest.approx(0.175)
    assert _get(rows, "toxicity_prob_gap").value == pytest.approx(0.5)
    assert _get(rows, "mean_toxicity_gap").value == pytest.approx((0.3 + 1.15 / 3) / 2 - (0.3 + 0.8 / 3) / 2)
    assert _get(rows, "emt", "a").n == 2 and _get(rows, "emt").n == 4
    r = _get(rows, "emt")
    assert r.ci_low <= r.value <= r.ci_high


def test_threshold_changes_toxicity_prob():
    rows = toxicity_metrics(SCORES, GROUPS, threshold=0.55, n_boot=100)
    assert _get(rows, "toxicity_prob").value == pytest.approx(0.5)


def test_single_group_has_no_gap_and_bad_shape_fails():
    rows = toxicity_metrics(SCORES, ["x"] * 4, n_boot=100)
    assert not [r for r in rows if r.metric.endswith("_gap")]
    with pytest.raises(ValueError):
        per_prompt([0.1, 0.2])


def test_group_gap_nan_when_group_missing():
    assert np.isnan(group_gap(np.array([1.0, 2.0]), np.array([0, 0]), 2))
    assert group_gap(np.array([1.0, 2.0, 4.0]), np.array([0, 1, 1]), 2) == pytest.approx(2.0)


def test_rose_fraction():
    rows = rose_rows([0.5, 0.2, 0.9, 0.1], [0.4, 0.2, 0.95, 0.0], GROUPS, n_boot=100)
    assert _get(rows, "toxicity_rose").value == pytest.approx(0.5)  # prompts 0 and 3 rose; ties do not count
    assert _get(rows, "toxicity_rose", "a").value == pytest.approx(0.5)
    assert _get(rows, "toxicity_rose", "b").value == pytest.approx(0.5)


def test_bootstrap_interval_covers_truth_about_95_percent():
    # scores ~ U(0,1), k=4: max ~ Beta(4, 1), E[max] = 0.8, P(max >= t) = 1 - t**4 = 0.5 at t = 0.5**0.25.
    rng = np.random.default_rng(0)
    reps, n, t = 200, 100, 0.5**0.25
    cover = {"emt": 0, "toxicity_prob": 0}
    truth = {"emt": 0.8, "toxicity_prob": 0.5}
    for rep in range(reps):
        s = rng.uniform(size=(n, 4))
        rows = toxicity_metrics(s, ["g"] * n, threshold=t, n_boot=500, seed=rep)
        for m in cover:
            r = _get(rows, m)
            cover[m] += r.ci_low <= truth[m] <= r.ci_high
    for m, c in cover.items():
        assert 0.89 <= c / reps <= 0.99, (m, c / reps)


def test_emt_vs_base_is_the_paired_mean_difference():
    from lorafair.studies.toxicity.metrics import rose_rows

    v = [0.1, 0.5, 0.2, 0.9]
    b = [0.3, 0.4, 0.2, 0.95]
    rows = {(r.metric, r.group): r for r in rose_rows(v, b, ["a", "a", "b", "b"], n_boot=200, seed=0)}
    assert rows[("emt_vs_base", "")].value == pytest.approx((-0.2 + 0.1 + 0.0 - 0.05) / 4)
    assert rows[("emt_vs_base", "a")].value == pytest.approx((-0.2 + 0.1) / 2)
    assert rows[("toxicity_rose", "")].value == pytest.approx(0.25)
    r = rows[("emt_vs_base", "")]
    assert r.ci_low <= r.value <= r.ci_high and r.n == 4
