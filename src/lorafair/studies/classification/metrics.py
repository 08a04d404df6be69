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

fairlearn's convention for a rate without a denominator (its rates come from sklearn's
``confusion_matrix(normalize="true")``, whose empty rows are 0): the TPR and FNR of a group with no
positives are 0, the FPR of a group with no negatives is 0, and likewise overall. A group without
records does not exist for fairlearn (it is not a row of ``MetricFrame.by_group``).

Bootstrap intervals (percentile, records resampled with replacement, ``n_boot`` replicates, seeded) of
the overall metrics use a vectorised numpy version of the same definitions (:func:`fairness_arrays`;
calling fairlearn 1,000 times would take minutes) that is tested equal to fairlearn, conventions
included: in a replicate a group without records is left out of the max / min, a group without
positives has TPR 0, one without negatives FPR 0. Per-group intervals bootstrap the group's own records
(:func:`lorafair.stats.bootstrap.bootstrap_mean_ci`).

**Undefined values** (:func:`undefined_masks`, applied to the study's rows, to every bootstrap replicate
and to the paired per-item statistics; fairlearn's own numbers are never changed by it):

- ``dp_difference``, ``dp_ratio``, ``eo_difference`` are undefined (NaN, "undefined: constant
  decisions") when every decision they are computed from is the same (all yes or all no): each group's
  selection rate, TPR and FPR are then that constant, so the gap is 0 by construction and says nothing
  about how groups are treated. One group with constant decisions does not make them undefined: its
  0 (or 1) against another group's varying rate is a real gap.
- every between-group metric (also ``accuracy_disparity``) is undefined in a replicate holding fewer than
  two groups ("undefined: fewer than two groups").
- ``accuracy_disparity``, accuracy, balanced accuracy, FPR, FNR, selection rate (overall and per group)
  stay defined with constant decisions: they are what the decisions achieve, not a comparison that
  constancy makes vacuous (a constant "no" has selection rate 0, FNR 1, balanced accuracy 0.5, and an
  accuracy disparity equal to the groups' difference in base rates).

Counterfactual flip rate (:func:`flip_rate`): for record i with decision d_i and decisions c_ij on the
same prompt with the protected attribute set to each other group value j, f_i = mean_j [c_ij != d_i];
the flip rate is mean_i f_i (0: decisions never depend on the attribute in the prompt). The study
reports it undefined when every factual and counterfactual decision is the same.

Per-item values (:func:`record_items`, :func:`item_metrics`): one item per evaluation record with
columns ``y_true``, ``y_pred``, ``between`` (1 when the record's group is kept in the between-group
metrics) and ``g:<group>``; every metric above is recomputed from them for (B, n) resampled columns.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lorafair.stats.paired import GROUP_PREFIX, group_columns
from lorafair.stats.bootstrap import bootstrap_mean_ci
from lorafair.studies.base import ItemSet

OVERALL = ("accuracy", "balanced_accuracy", "fpr", "fnr", "selection_rate",
           "accuracy_disparity", "dp_difference", "dp_ratio", "eo_difference")
BY_GROUP = ("accuracy", "fpr", "fnr", "selection_rate")


def fairlearn_metrics(y_true, y_pred, groups) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(overall metrics, {group: {metric: value}}) computed with fairlearn/sklearn (see module doc). Imported
    here: fairlearn brings sklearn and scipy.stats (0.6 s), which runs without a classification study never use."""
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


UNDEFINED_CONSTANT = "undefined: constant decisions"
UNDEFINED_FEW_GROUPS = "undefined: fewer than two groups"
# overall metrics undefined where the decisions they are computed from are all the same
CONSTANT_UNDEFINED = ("dp_difference", "dp_ratio", "eo_difference")
BETWEEN = ("accuracy_disparity", "dp_difference", "dp_ratio", "eo_difference")


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where b == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def _rate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, 0 where b == 0 (fairlearn's convention for a rate without a denominator)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def _spread(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """nan-aware (max, min) over the last axis; nan where every entry is nan."""
    ok = ~np.isnan(x).all(axis=-1)
    hi = np.where(ok, np.nanmax(np.where(np.isnan(x), -np.inf, x), axis=-1), np.nan)
    lo = np.where(ok, np.nanmin(np.where(np.isnan(x), np.inf, x), axis=-1), np.nan)
    return hi, lo


def overall_arrays(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """accuracy, balanced_accuracy, fpr, fnr, selection_rate of each row of (B, n) bool arrays."""
    tp, fp = (y & p).sum(-1), (~y & p).sum(-1)
    pos, neg = y.sum(-1), (~y).sum(-1)
    out = {
        "accuracy": (y == p).mean(-1).astype(np.float64),
        "fpr": _rate(fp, neg), "fnr": _rate(pos - tp, pos), "selection_rate": p.mean(-1).astype(np.float64),
    }
    # sklearn's balanced accuracy: the mean recall over the classes present in y_true
    tpr_all, tnr_all = _div(tp, pos), _div(neg - fp, neg)
    with np.errstate(invalid="ignore"):
        out["balanced_accuracy"] = np.where(np.isnan(tpr_all), tnr_all, np.where(np.isnan(tnr_all), tpr_all, (tpr_all + tnr_all) / 2))
    return out


def between_arrays(y: np.ndarray, p: np.ndarray, members: list[np.ndarray]) -> dict[str, np.ndarray]:
    """accuracy_disparity, dp_difference, dp_ratio, eo_difference of each row of (B, n) bool arrays,
    ``members`` one (B, n) bool mask per group; a group without records in a row is left out of it, as
    fairlearn never sees it; TPR / FPR of a group without positives / negatives are 0 (fairlearn)."""
    acc, sel, tpr, fpr = [], [], [], []
    shape = y.shape[:-1]
    for m in members:
        nk = m.sum(-1)
        present = nk > 0
        pk, qk = (m & y).sum(-1), (m & ~y).sum(-1)
        acc.append(_div((m & (y == p)).sum(-1), nk))
        sel.append(_div((m & p).sum(-1), nk))
        tpr.append(np.where(present, _rate((m & y & p).sum(-1), pk), np.nan))
        fpr.append(np.where(present, _rate((m & ~y & p).sum(-1), qk), np.nan))
    if not members:
        nan = np.full(shape, np.nan)
        return {k: nan.copy() for k in BETWEEN}
    acc, sel, tpr, fpr = (np.stack(a, axis=-1) for a in (acc, sel, tpr, fpr))
    out = {}
    hi, lo = _spread(acc)
    out["accuracy_disparity"] = hi - lo
    hi, lo = _spread(sel)
    out["dp_difference"] = hi - lo
    out["dp_ratio"] = _div(lo, hi)
    th, tl = _spread(tpr)
    fh, fl = _spread(fpr)
    out["eo_difference"] = np.fmax(th - tl, fh - fl)
    return out


def fairness_arrays(y_true: np.ndarray, y_pred: np.ndarray, gcode: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    """The overall metrics of :data:`OVERALL` for each row of (B, n) arrays of labels, decisions and
    group codes (0..n_groups-1): a (B,) array per metric. Same definitions and conventions as
    :func:`fairlearn_metrics` (no undefined rule: see :func:`undefined_masks`)."""
    y = np.atleast_2d(y_true).astype(bool)
    p = np.atleast_2d(y_pred).astype(bool)
    g = np.atleast_2d(gcode)
    out = overall_arrays(y, p)
    out.update(between_arrays(y, p, [g == k for k in range(n_groups)]))
    return {k: out[k] for k in OVERALL}


def undefined_masks(p: np.ndarray, members: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(constant, few) (B,) bool masks of (B, n) decisions and group masks: ``constant`` where every
    decision of a record in some group is the same (or there is none), ``few`` where fewer than two
    groups have a record."""
    p = np.asarray(p, dtype=bool)
    if not members:
        t = np.ones(p.shape[:-1], dtype=bool)
        return t, t
    inside = np.logical_or.reduce(members)
    n_in = inside.sum(-1)
    yes = (inside & p).sum(-1)
    constant = (yes == 0) | (yes == n_in)
    few = np.stack([m.any(-1) for m in members], axis=-1).sum(-1) < 2
    return constant, few


def apply_undefined(stats: dict[str, np.ndarray], constant: np.ndarray, few: np.ndarray) -> dict[str, np.ndarray]:
    """NaN in the between-group metrics of ``stats`` where they are undefined (see module doc)."""
    out = dict(stats)
    for k in BETWEEN:
        if k in out:
            bad = few | constant if k in CONSTANT_UNDEFINED else few
            out[k] = np.where(bad, np.nan, out[k])
    return out


def undefined_note(metric: str, decisions, groups) -> str:
    """The note of a between-group row computed on ``decisions`` of records in ``groups`` ("" when defined)."""
    d = np.asarray(decisions, dtype=bool)[None, :]
    g = np.asarray(groups).astype(str)
    members = [(g == k)[None, :] for k in sorted(set(g.tolist()))]
    constant, few = undefined_masks(d, members)
    if few[0]:
        return UNDEFINED_FEW_GROUPS
    if metric in CONSTANT_UNDEFINED and constant[0]:
        return UNDEFINED_CONSTANT
    return ""


def bootstrap_fairness(y_true, y_pred, groups, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                       undefined: bool = True) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval (low, high) of every metric of :data:`OVERALL`; with ``undefined``
    the replicates where a metric is undefined (:func:`undefined_masks`) are left out of its interval."""
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    names, gcode = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    n = len(y_true)
    if n < 2 or n_boot < 1:
        return {k: (float("nan"), float("nan")) for k in OVERALL}
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    stats = fairness_arrays(y_true[idx], y_pred[idx], gcode[idx], len(names))
    if undefined:
        g = gcode[idx]
        stats = apply_undefined(stats, *undefined_masks(y_pred[idx].astype(bool), [g == k for k in range(len(names))]))
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


# -- per-item values ---------------------------------------------------------------------------



def record_items(ids, y_true, y_pred, groups, kept, flips=None) -> ItemSet:
    """One item per record: ``y_true``, ``y_pred``, ``between`` (1 when the record's group is in
    ``kept``, the groups of the between-group metrics), ``g:<group>`` for every group, and ``flip``
    (its share of counterfactual decisions that differ) when given."""
    groups = np.asarray(groups).astype(str)
    cols = {"y_true": np.asarray(y_true, dtype=np.float64), "y_pred": np.asarray(y_pred, dtype=np.float64),
            "between": np.isin(groups, list(kept)).astype(np.float64)}
    cols.update(group_columns(groups))
    if flips is not None:
        cols["flip"] = np.asarray(flips, dtype=np.float64)
    return ItemSet(list(ids), cols)


def _item_arrays(c: dict[str, np.ndarray]):
    y = np.atleast_2d(c["y_true"]) > 0.5
    p = np.atleast_2d(c["y_pred"]) > 0.5
    names = sorted(k[len(GROUP_PREFIX):] for k in c if k.startswith(GROUP_PREFIX))
    return y, p, names


def item_metrics(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every metric of :data:`OVERALL` (with the undefined rule) from (B, n) item columns of
    :func:`record_items`: overall ones on every record, between-group ones on the ``between`` records."""
    y, p, names = _item_arrays(c)
    inside = np.atleast_2d(c["between"]) > 0.5
    members = [(np.atleast_2d(c[GROUP_PREFIX + g]) > 0.5) & inside for g in names]
    out = overall_arrays(y, p)
    out.update(apply_undefined(between_arrays(y, p, members), *undefined_masks(p, members)))
    return out


def item_stat(metric: str):
    """The :class:`lorafair.studies.base.MetricSpec` statistic of one metric of :func:`item_metrics`."""

    def stat(c):
        return item_metrics(c)[metric]

    return stat


def item_group_rates(c: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """{group: {metric: (B,)}} of :data:`BY_GROUP` from item columns, as the per-group rows define them
    (the mean over the group's records, its negatives for fpr, its positives for fnr; NaN without any)."""
    y, p, names = _item_arrays(c)
    out = {}
    for g in names:
        m = np.atleast_2d(c[GROUP_PREFIX + g]) > 0.5
        out[g] = {
            "accuracy": _div((m & (y == p)).sum(-1), m.sum(-1)),
            "fpr": _div((m & ~y & p).sum(-1), (m & ~y).sum(-1)),
            "fnr": _div((m & y & ~p).sum(-1), (m & y).sum(-1)),
            "selection_rate": _div((m & p).sum(-1), m.sum(-1)),
        }
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
