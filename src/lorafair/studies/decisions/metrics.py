"""Fairness, profit and delayed-impact metrics of a batch of lending episodes.

Every rate pools the applicants of all episodes (ratio of sums); its 95 % interval is a percentile
bootstrap over *episodes* (:func:`lorafair.stats.bootstrap.bootstrap_ci`, episodes resampled with
replacement), since applicants of one episode share a population and are not independent.

Definitions (y = the simulator's counterfactual repayment draw, d = the decision, g = the group):

- ``approval_rate``  P(d=1 | g); ``approval_gap`` = max_g − min_g of it (demographic parity difference);
- ``tpr``  P(d=1 | g, y=1); ``tpr_gap`` = max_g − min_g (equal opportunity difference);
- ``fpr``  P(d=1 | g, y=0); ``fpr_gap`` likewise;
- ``profit``  the lender's mean profit per applicant, in thousands (+interest on repaid loans, −loss on
  defaults);
- ``score_change``  per group: mean score of the group's members at the end of the episode minus at
  the start (Liu et al.'s delayed impact Δμ), averaged over episodes;
- ``final_score_gap``  max_g − min_g of the groups' mean scores at the end (averaged over episodes first);
- ``flip_rate``  P(d ≠ d_cf), d_cf the decision for the same applicant and history with only the group
  changed (per group: by the applicant's true group);
- ``agreement``  P(d = d_ref), d_ref the decision of the reference policy (the one the fine-tuning data
  imitates) on the same applicant in the same state.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from lorafair.stats.bootstrap import bootstrap_ci, bootstrap_mean_ci
from lorafair.studies.base import MetricRow
from lorafair.studies.decisions.simulator import EpisodeLog


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    d = den.sum()
    return float(num.sum() / d) if d > 0 else float("nan")


def _gap(values: list[float]) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(max(v) - min(v)) if len(v) == len(values) and v else float("nan")


def _row(metric: str, values: np.ndarray, stat: Callable[[np.ndarray], float], n: int, n_boot: int, seed: int,
         group: str = "") -> MetricRow:
    point, lo, hi = bootstrap_ci(values, stat, n_boot=n_boot, seed=seed)
    return MetricRow(metric, point, lo, hi, n, group)


def compute_metrics(log: EpisodeLog, *, n_boot: int = 1000, seed: int = 0, agreement: bool = True) -> list[MetricRow]:
    """All metrics of the module docstring, per group and overall, with bootstrap intervals over episodes."""
    E, T = log.group.shape
    G = len(log.groups)
    d, y, dcf = log.approved.astype(float), log.would_repay.astype(float), log.approved_cf.astype(float)
    # per-episode counts: columns [n_g, approved_g, pos_g, tp_g, neg_g, fp_g, flips_g] for each group
    cols = []
    for k in range(G):
        m = (log.group == k).astype(float)
        cols += [m, m * d, m * y, m * d * y, m * (1 - y), m * d * (1 - y), m * np.abs(d - dcf)]
    counts = np.stack([c.sum(axis=1) for c in cols], axis=1)  # E × 7G
    c = lambda k, j: 7 * k + j  # noqa: E731
    n_all = E * T
    rows: list[MetricRow] = []
    rate_defs = {"approval_rate": (1, 0), "tpr": (3, 2), "fpr": (5, 4)}
    for name, (num, den) in rate_defs.items():
        for k, g in enumerate(log.groups):
            rows.append(_row(name, counts, lambda x, k=k, num=num, den=den: _ratio(x[:, c(k, num)], x[:, c(k, den)]),
                             int(counts[:, c(k, den)].sum()), n_boot, seed, g))
        gap = lambda x, num=num, den=den: _gap([_ratio(x[:, c(k, num)], x[:, c(k, den)]) for k in range(G)])  # noqa: E731
        rows.append(_row(name.replace("_rate", "") + "_gap", counts, gap, E, n_boot, seed))
    rows.append(_row("approval_rate", counts, lambda x: _ratio(sum(x[:, c(k, 1)] for k in range(G)), sum(x[:, c(k, 0)] for k in range(G))), n_all, n_boot, seed))
    # profit per applicant (thousands), per episode then bootstrap of the mean over episodes
    rows.append(MetricRow("profit", *bootstrap_mean_ci(log.profit.mean(axis=1), n_boot=n_boot, seed=seed), E))
    # delayed impact
    start, end = log.mean_score[:, 0, :], log.mean_score[:, -1, :]
    for k, g in enumerate(log.groups):
        rows.append(MetricRow("score_change", *bootstrap_mean_ci(end[:, k] - start[:, k], n_boot=n_boot, seed=seed), E, g))
    rows.append(_row("final_score_gap", end, lambda x: float(x.mean(axis=0).max() - x.mean(axis=0).min()), E, n_boot, seed))
    # counterfactual flips
    for k, g in enumerate(log.groups):
        rows.append(_row("flip_rate", counts, lambda x, k=k: _ratio(x[:, c(k, 6)], x[:, c(k, 0)]), int(counts[:, c(k, 0)].sum()), n_boot, seed, g))
    rows.append(MetricRow("flip_rate", *bootstrap_mean_ci(np.abs(d - dcf).mean(axis=1), n_boot=n_boot, seed=seed), n_all))
    if agreement:
        agree = (log.approved == log.reference).mean(axis=1)
        rows.append(MetricRow("agreement", *bootstrap_mean_ci(agree, n_boot=n_boot, seed=seed), n_all))
    return rows


def trajectory(log: EpisodeLog) -> dict[str, Any]:
    """Per-round curves for the report: the approval gap among the round's applicants (pooled over
    episodes; None when a group had no applicant that round), the cumulative approval gap up to the
    round, and each group's mean score after the round (averaged over episodes; the initial means are
    in ``mean_score_initial``)."""
    E, T = log.group.shape
    G = len(log.groups)
    per_round, cumulative = [], []
    for t in range(T):
        gap_t = _gap([_ratio(log.approved[:, t][log.group[:, t] == k], np.ones((log.group[:, t] == k).sum())) for k in range(G)])
        sl = slice(0, t + 1)
        gap_c = _gap([_ratio(log.approved[:, sl][log.group[:, sl] == k], np.ones((log.group[:, sl] == k).sum())) for k in range(G)])
        per_round.append(gap_t if np.isfinite(gap_t) else None)
        cumulative.append(gap_c if np.isfinite(gap_c) else None)
    means = log.mean_score.mean(axis=0)  # (T+1) × G
    return {
        "round": list(range(1, T + 1)),
        "approval_gap": per_round,
        "approval_gap_cumulative": cumulative,
        "mean_score": {g: [float(v) for v in means[1:, k]] for k, g in enumerate(log.groups)},
        "mean_score_initial": {g: float(means[0, k]) for k, g in enumerate(log.groups)},
        "episodes": E,
    }
