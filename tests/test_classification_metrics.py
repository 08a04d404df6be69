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
    CONSTANT_UNDEFINED,
    OVERALL,
    UNDEFINED_CONSTANT,
    UNDEFINED_FEW_GROUPS,
    apply_undefined,
    bootstrap_fairness,
    fairlearn_metrics,
    fairness_arrays,
    flip_rate,
    group_intervals,
    per_record_flips,
    undefined_masks,
    undefined_note,
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


def _assert_vectorised_equals_fairlearn(y, p, g, seed, resamples, nan_ok=False):
    """The vectorised path equals fairlearn on the data and on bootstrap-like resamples (several rows at once),
    each resample compared with fairlearn on that resample."""
    names, code = np.unique(g, return_inverse=True)
    overall, _ = fairlearn_metrics(y, p, g)
    fast = fairness_arrays(y[None], p[None], code[None], len(names))
    for k in OVERALL:
        assert fast[k][0] == pytest.approx(overall[k], abs=1e-12), k
    idx = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    fast = fairness_arrays(y[idx], p[idx], code[idx], len(names))
    for b in range(resamples):
        ref, _ = fairlearn_metrics(y[idx[b]], p[idx[b]], g[idx[b]])
        for k in OVERALL:
            assert fast[k][b] == pytest.approx(ref[k], abs=1e-12, nan_ok=nan_ok), (k, b)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_vectorised_equals_fairlearn_on_random_predictions(seed):
    y, p, g = _random(seed, n=257, groups=("x", "y", "z", "w"))
    _assert_vectorised_equals_fairlearn(y, p, g, seed, resamples=3)


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


# -- groups without positives / negatives: the vectorised path follows fairlearn's conventions -------------

def _lopsided(seed, n=120):
    """Group "a" has no positives, group "b" no negatives, group "c" both."""
    rng = np.random.default_rng(seed)
    g = rng.choice(["a", "b", "c"], n)
    y = np.where(g == "a", 0, np.where(g == "b", 1, rng.integers(0, 2, n)))
    p = rng.integers(0, 2, n)
    return y, p, g


def test_fairlearn_convention_for_a_group_without_positives():
    # what fairlearn itself does: TPR (and FNR) of a group with no positives is 0, FPR of one with no negatives is 0
    from fairlearn.metrics import false_negative_rate, true_positive_rate

    y, p, g = _lopsided(0)
    mf = MetricFrame(metrics={"tpr": true_positive_rate, "fpr": false_positive_rate, "fnr": false_negative_rate},
                     y_true=y, y_pred=p, sensitive_features=g)
    assert mf.by_group.loc["a", "tpr"] == 0.0 and mf.by_group.loc["a", "fnr"] == 0.0
    assert mf.by_group.loc["b", "fpr"] == 0.0
    tpr = mf.by_group["tpr"]
    fpr = mf.by_group["fpr"]
    assert equalized_odds_difference(y, p, sensitive_features=g) == pytest.approx(
        max(tpr.max() - tpr.min(), fpr.max() - fpr.min()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_equals_fairlearn_when_groups_lack_positives_or_negatives(seed):
    y, p, g = _lopsided(seed)
    overall, _ = fairlearn_metrics(y, p, g)
    assert overall["eo_difference"] == pytest.approx(equalized_odds_difference(y, p, sensitive_features=g))
    _assert_vectorised_equals_fairlearn(y, p, g, seed, resamples=5, nan_ok=True)


def test_vectorised_equals_fairlearn_overall_without_negatives_and_with_an_absent_group():
    # no negatives at all (overall FPR 0 in fairlearn), and a resample in which group "z" has no record
    y = np.array([1, 1, 1, 1, 1, 1])
    p = np.array([1, 0, 1, 1, 0, 0])
    g = np.array(["x", "x", "y", "y", "z", "x"])
    names, code = np.unique(g, return_inverse=True)
    idx = np.array([[0, 1, 2, 3, 5, 5], [0, 1, 2, 3, 4, 5]])
    fast = fairness_arrays(y[idx], p[idx], code[idx], len(names))
    for b in range(2):
        ref, _ = fairlearn_metrics(y[idx[b]], p[idx[b]], g[idx[b]])
        for k in OVERALL:
            assert fast[k][b] == pytest.approx(ref[k], abs=1e-12, nan_ok=True), (k, b)


# -- constant decisions are undefined, never fair --------------------------------------------------------

def test_constant_decisions_make_parity_metrics_undefined():
    y, _, g = _random(3, n=60, groups=("a", "b"))
    for const in (0, 1):
        p = np.full(len(y), const)
        # fairlearn calls this perfectly fair (0) ...
        assert demographic_parity_difference(y, p, sensitive_features=g) == 0.0
        # ... the study's rule says undefined
        for k in CONSTANT_UNDEFINED:
            assert undefined_note(k, p, g) == UNDEFINED_CONSTANT, k
        assert undefined_note("accuracy_disparity", p, g) == ""
        names, code = np.unique(g, return_inverse=True)
        stats = apply_undefined(fairness_arrays(y[None], p[None], code[None], 2),
                                *undefined_masks(p[None].astype(bool), [code[None] == k for k in range(2)]))
        assert np.isnan(stats["dp_difference"][0]) and np.isnan(stats["eo_difference"][0]) and np.isnan(stats["dp_ratio"][0])
        assert stats["accuracy"][0] == pytest.approx(np.mean(y == p))
        assert np.isfinite(stats["accuracy_disparity"][0])
        ci = bootstrap_fairness(y, p, g, n_boot=200)
        assert np.isnan(ci["dp_difference"]).all() and np.isfinite(ci["accuracy"]).all()


def test_one_constant_group_keeps_the_gap_defined():
    # every "b" denied, "a" decided on: a real demographic-parity gap, not an undefined one
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    p = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    g = np.array(["a"] * 4 + ["b"] * 4)
    assert undefined_note("dp_difference", p, g) == ""
    o, _ = fairlearn_metrics(y, p, g)
    assert o["dp_difference"] == pytest.approx(0.75)
    # a resample holding one group only: every between-group metric undefined
    assert undefined_note("accuracy_disparity", p[:4], g[:4]) == UNDEFINED_FEW_GROUPS


def test_bootstrap_leaves_out_constant_resamples():
    # one "yes" among 40: many resamples are constant; their dp_difference must not count as 0
    y = np.zeros(40, dtype=int)
    p = np.zeros(40, dtype=int)
    p[0] = 1
    g = np.array(["a", "b"] * 20)
    names, code = np.unique(g, return_inverse=True)
    idx = np.random.default_rng(0).integers(0, 40, size=(500, 40))
    raw = fairness_arrays(y[idx], p[idx], code[idx], 2)["dp_difference"]
    assert (raw == 0).any()  # the resamples without the "yes"
    lo, hi = bootstrap_fairness(y, p, g, n_boot=500, seed=0)["dp_difference"]
    assert lo > 0 and lo == pytest.approx(np.quantile(raw[raw > 0], 0.025))
