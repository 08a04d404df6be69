"""Accuracy and group-fairness metrics of binary decisions, with bootstrap intervals.

Point estimates come from ``fairlearn.metrics`` (Bird et al. 2020):

- ``accuracy`` and ``balanced_accuracy`` (sklearn; balanced = mean of TPR and TNR);
- per group (``fairlearn.metrics.MetricFrame``): ``accuracy``, ``fpr`` = FP / (FP + TN),
  ``fnr`` = FN / (FN + TP), ``selection_rate`` = share of positive decisions; also overall;
- ``accuracy_disparity`` = max − min of the per-group accuracy (``MetricFrame.difference()``, the
  paper's "accuracy disparity");
- ``dp_difference`` / ``dp_ratio``: ``demographic_parity_difference`` / ``_ratio`` (max − min and
  min / max of the per-group selection rate);
- ``eo_difference``: ``equalized_odds_difference`` (the larger of the max − min TPR gap and the
  max − min FPR gap between groups).

Bootstrap intervals (percentile, records resampled with replacement, ``n_boot`` replicates, seeded) of
the overall metrics use a vectorised numpy version of the same definitions (:func:`fairness_arrays`;
calling fairlearn 1,000 times would take minutes) that is tested equal to fairlearn. In a replicate a
group without records, or a rate without a denominator, is left out (nan-aware max/min); the interval is
the nan-aware quantile. Per-group intervals bootstrap the group's own records
(:func:`lorafair.stats.bootstrap.bootstrap_mean_ci`).

Counterfactual flip rate (:func:`flip_rate`): for record i with decision d_i and decisions c_ij on the
same prompt with the protected attribute set to each other group value j, f_i = mean_j [c_ij != d_i];
the flip rate is mean_i f_i (0: decisions never depend on the attribute in the prompt).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
)
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from lorafair.stats.bootstrap import bootstrap_mean_ci

OVERALL = ("accuracy", "balanced_accuracy", "fpr", "fnr", "selection_rate",
           "accuracy_disparity", "dp_difference", "dp_ratio", "eo_difference")
BY_GROUP = ("accuracy", "fpr", "fnr", "selection_rate")


def fairlearn_metrics(y_true, y_pred, groups) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(overall metrics, {group: {metric: value}}) computed with fairlearn/sklearn (see module doc)."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    groups = np.asarray(groups).astype(str)
    mf = MetricFrame(
        metrics={"accuracy": accuracy_score, "fpr": false_positive_rate, "fnr": false_negative_rate,
                 "selection_rate": selection_rate},
        y_true=y_true, y_pred=y_pred, sensitive_features=groups,
    )
    overall = {k: float(v) for k, v in mf.overall.items()}
    overall["balanced_accuracy"] = float(balanced_accuracy_score(y_true, y_pred))
    overall["accuracy_disparity"] = float(mf.difference()["accuracy"])
    overall["dp_difference"] = float(demographic_parity_difference(y_true, y_pred, sensitive_features=groups))
    overall["dp_ratio"] = float(demographic_parity_ratio(y_true, y_pred, sensitive_features=groups))
    overall["eo_difference"] = float(equalized_odds_difference(y_true, y_pred, sensitive_features=groups))
    by_group = {str(g): {k: float(v) for k, v in row.items()} for g, row in mf.by_group.iterrows()}
    return {k: overall[k] for k in OVERALL}, by_group


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def _spread(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """nan-aware (max, min) over the last axis; nan where every entry is nan."""
    ok = ~np.isnan(x).all(axis=-1)
    hi = np.where(ok, np.nanmax(np.where(np.isnan(x), -np.inf, x), axis=-1), np.nan)
    lo = np.where(ok, np.nanmin(np.where(np.isnan(x), np.inf, x), axis=-1), np.nan)
    return hi, lo


def fairness_arrays(y_true: np.ndarray, y_pred: np.ndarray, gcode: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    """The overall metrics of :data:`OVERALL` for each row of (B, n) arrays of labels, decisions and
    group codes (0..n_groups-1): a (B,) array per metric. Same definitions as :func:`fairlearn_metrics`."""
    y = np.atleast_2d(y_true).astype(bool)
    p = np.atleast_2d(y_pred).astype(bool)
    g = np.atleast_2d(gcode)
    tp, fp = (y & p).sum(1), (~y & p).sum(1)
    pos, neg = y.sum(1), (~y).sum(1)
    n = y.shape[1]
    out = {
        "accuracy": (y == p).mean(1).astype(np.float64),
        "fpr": _div(fp, neg), "fnr": _div(pos - tp, pos), "selection_rate": p.mean(1).astype(np.float64),
    }
    tpr_all, tnr_all = _div(tp, pos), _div(neg - fp, neg)
    out["balanced_accuracy"] = np.nanmean(np.stack([tpr_all, tnr_all]), axis=0) if n else np.nan
    acc, sel, tpr, fpr = [], [], [], []
    for k in range(n_groups):
        m = g == k
        nk = m.sum(1)
        pk, nk_neg = (m & y).sum(1), (m & ~y).sum(1)
        acc.append(_div((m & (y == p)).sum(1), nk))
        sel.append(_div((m & p).sum(1), nk))
        tpr.append(_div((m & y & p).sum(1), pk))
        fpr.append(_div((m & ~y & p).sum(1), nk_neg))
    acc, sel, tpr, fpr = (np.stack(a, axis=-1) for a in (acc, sel, tpr, fpr))
    hi, lo = _spread(acc)
    out["accuracy_disparity"] = hi - lo
    hi, lo = _spread(sel)
    out["dp_difference"] = hi - lo
    out["dp_ratio"] = _div(lo, hi)
    th, tl = _spread(tpr)
    fh, fl = _spread(fpr)
    out["eo_difference"] = np.fmax(th - tl, fh - fl)
    return out


def bootstrap_fairness(y_true, y_pred, groups, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval (low, high) of every metric of :data:`OVERALL`."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    names, gcode = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n = len(y_true)
    if n < 2 or n_boot < 1:
        return {k: (float("nan"), float("nan")) for k in OVERALL}
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    stats = fairness_arrays(y_true[idx], y_pred[idx], gcode[idx], len(names))
    alpha = (1 - level) / 2
    out = {}
    for k in OVERALL:
        v = stats[k]
        if np.isnan(v).all():
            out[k] = (float("nan"), float("nan"))
        else:
            lo, hi = np.nanquantile(v, [alpha, 1 - alpha])
            out[k] = (float(lo), float(hi))
    return out


def group_intervals(y_true, y_pred, groups, *, n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, tuple[float, float, float, int]]]:
    """{group: {metric: (value, low, high, n)}} for :data:`BY_GROUP`, each a bootstrapped mean over
    the group's records (accuracy: correctness; fpr: decisions on negatives; fnr: misses on positives;
    selection_rate: decisions); n is the denominator."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    groups = np.asarray(groups).astype(str)
    out: dict[str, dict[str, tuple[float, float, float, int]]] = {}
    for gi, g in enumerate(sorted(set(groups.tolist()))):
        m = groups == g
        y, p = y_true[m], y_pred[m]
        parts = {"accuracy": (y == p), "fpr": p[y == 0], "fnr": 1 - p[y == 1], "selection_rate": p}
        out[g] = {}
        for mi, (name, vals) in enumerate(parts.items()):
            point, lo, hi = bootstrap_mean_ci(vals.astype(float), n_boot=n_boot, seed=seed + 1000 * gi + mi)
            out[g][name] = (point, lo, hi, int(len(vals)))
    return out


def per_record_flips(factual: Sequence[int], counterfactual: Sequence[Sequence[int]]) -> np.ndarray:
    """f_i = share of record i's counterfactual decisions that differ from its decision."""
    d = np.asarray(factual, dtype=int)
    if len(counterfactual) != len(d):
        raise ValueError("one list of counterfactual decisions per record is required")
    out = np.empty(len(d), dtype=np.float64)
    for i, cf in enumerate(counterfactual):
        cf = np.asarray(cf, dtype=int)
        if cf.size == 0:
            raise ValueError(f"record {i} has no counterfactual decision")
        out[i] = float(np.mean(cf != d[i]))
    return out


def flip_rate(factual: Sequence[int], counterfactual: Sequence[Sequence[int]]) -> float:
    """Counterfactual flip rate mean_i f_i (see module doc)."""
    f = per_record_flips(factual, counterfactual)
    return float(f.mean()) if len(f) else float("nan")
