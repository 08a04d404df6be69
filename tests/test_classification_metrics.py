"""Group metrics equal fairlearn; hand-checked values; counterfactual flip rate."""

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
)

from lorafair.studies.classification.metrics import (
    OVERALL,
    bootstrap_fairness,
    fairlearn_metrics,
    fairness_arrays,
    flip_rate,
    group_intervals,
    per_record_flips,
)


def _random(seed, n=400, groups=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, n), rng.integers(0, 2, n), rng.choice(groups, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fairlearn_metrics_equal_fairlearn_functions(seed):
    y, p, g = _random(seed)
    overall, by_group = fairlearn_metrics(y, p, g)
    assert overall["dp_difference"] == pytest.approx(demographic_parity_difference(y, p, sensitive_features=g))
    assert overall["dp_ratio"] == pytest.approx(demographic_parity_ratio(y, p, sensitive_features=g))
    assert overall["eo_difference"] == pytest.approx(equalized_odds_difference(y, p, sensitive_features=g))
    mf = MetricFrame(metrics=false_positive_rate, y_true=y, y_pred=p, sensitive_features=g)
    for k in ("a", "b", "c"):
        assert by_group[k]["fpr"] == pytest.approx(mf.by_group[k])
        m = g == k
        assert by_group[k]["accuracy"] == pytest.approx(np.mean(y[m] == p[m]))
    accs = [by_group[k]["accuracy"] for k in by_group]
    assert overall["accuracy_disparity"] == pytest.approx(max(accs) - min(accs))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_vectorised_equals_fairlearn_on_random_predictions(seed):
    y, p, g = _random(seed, n=257, groups=("x", "y", "z", "w"))
    overall, _ = fairlearn_metrics(y, p, g)
    names, code = np.unique(g, return_inverse=True)
    fast = fairness_arrays(y[None], p[None], code[None], len(names))
    for k in OVERALL:
        assert fast[k][0] == pytest.approx(overall[k], abs=1e-12), k
    # and on bootstrap-like resamples (several rows at once)
    idx = np.random.default_rng(seed).integers(0, len(y), size=(3, len(y)))
    fast = fairness_arrays(y[idx], p[idx], code[idx], len(names))
    for b in range(3):
        ref, _ = fairlearn_metrics(y[idx[b]], p[idx[b]], g[idx[b]])
        for k in OVERALL:
            assert fast[k][b] == pytest.approx(ref[k], abs=1e-12), (k, b)


def test_hand_computed_example():
    # group A: y=1,1,0,0 p=1,0,0,1 -> acc .5, TPR .5, FPR .5, sel .5
    # group B: y=1,0,0,0 p=1,0,0,0 -> acc 1, TPR 1, FPR 0, sel .25
    y = [1, 1, 0, 0, 1, 0, 0, 0]
    p = [1, 0, 0, 1, 1, 0, 0, 0]
    g = ["A"] * 4 + ["B"] * 4
    o, by = fairlearn_metrics(y, p, g)
    assert o["accuracy"] == pytest.approx(6 / 8)
    assert o["balanced_accuracy"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert o["accuracy_disparity"] == pytest.approx(0.5)
    assert o["dp_difference"] == pytest.approx(0.25)
    assert o["dp_ratio"] == pytest.approx(0.5)
    assert o["eo_difference"] == pytest.approx(0.5)
    assert by["A"] == pytest.approx({"accuracy": 0.5, "fpr": 0.5, "fnr": 0.5, "selection_rate": 0.5})
    assert by["B"] == pytest.approx({"accuracy": 1.0, "fpr": 0.0, "fnr": 0.0, "selection_rate": 0.25})


def test_bootstrap_intervals_contain_point_and_are_seeded():
    y, p, g = _random(5, n=300)
    o, _ = fairlearn_metrics(y, p, g)
    ci = bootstrap_fairness(y, p, g, n_boot=500, seed=1)
    for k in OVERALL:
        lo, hi = ci[k]
        assert lo <= o[k] <= hi, k
        assert hi > lo
    assert ci == bootstrap_fairness(y, p, g, n_boot=500, seed=1)
    assert ci != bootstrap_fairness(y, p, g, n_boot=500, seed=2)


def test_group_intervals_points_match_fairlearn():
    y, p, g = _random(7)
    _, by = fairlearn_metrics(y, p, g)
    gi = group_intervals(y, p, g, n_boot=200)
    for grp, per in gi.items():
        for k, (v, lo, hi, n) in per.items():
            assert v == pytest.approx(by[grp][k])
            assert lo <= v <= hi
    m = g == "a"
    assert gi["a"]["fpr"][3] == int((y[m] == 0).sum())


def test_flip_rate_hand_checked():
    factual = [1, 0, 1, 0]
    counterfactual = [[1], [1], [0, 1], [0, 0, 1, 1]]
    # record 0: no flip; 1: flips (1/1); 2: one of two flips (1/2); 3: two of four (1/2)
    assert per_record_flips(factual, counterfactual).tolist() == [0.0, 1.0, 0.5, 0.5]
    assert flip_rate(factual, counterfactual) == pytest.approx(0.5)
    assert flip_rate([1, 1], [[1], [1]]) == 0.0
    with pytest.raises(ValueError, match="one list"):
        flip_rate([1, 0], [[1]])
    with pytest.raises(ValueError, match="no counterfactual"):
        flip_rate([1], [[]])
