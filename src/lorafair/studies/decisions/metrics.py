"""Fairness, profit and delayed-impact metrics of a batch of lending episodes.

Every rate pools the applicants of all episodes (ratio of sums); its 95 % interval is a percentile
bootstrap over *episodes* (episodes resampled with replacement, with all their applicants), since
applicants of one episode share a population and a history and are not independent. The episodes are
also the items of the paired comparison between variants (:func:`episode_items`: one item per episode,
id its index, the same arrivals for every variant of a seed by common random numbers); every metric is
a vectorised statistic of those per-episode columns (:data:`STATS`), and the rows' point values and
intervals are computed with the same statistics, so they are recomputed exactly from the items.

Definitions (y = the simulator's counterfactual repayment draw, d = the decision, g = the group):

- ``approval_rate``  P(d=1 | g); ``approval_gap`` = max_g − min_g of it (demographic parity difference);
- ``tpr``  P(d=1 | g, y=1); ``tpr_gap`` = max_g − min_g (equal opportunity difference);
- ``fpr``  P(d=1 | g, y=0); ``fpr_gap`` likewise;
- ``profit``  the lender's mean profit per applicant, in thousands (+interest on repaid loans, −loss on
  defaults): the mean over episodes of the episode's mean;
- ``score_change``  per group: mean score of the group's members at the end of the episode minus at
  the start (Liu et al.'s delayed impact Δμ), averaged over episodes;
- ``final_score_gap``  max_g − min_g of the groups' mean scores at the end (averaged over episodes first);
- ``flip_rate``  P(d ≠ d_cf), d_cf the decision for the same applicant and history with only the group
  changed (per group: by the applicant's true group);
- ``agreement``  P(d = d_ref), d_ref the decision of the reference policy (the one the fine-tuning data
  imitates) on the same applicant in the same state.

Undefined values (NaN, with a ``note``): ``approval_gap``, ``tpr_gap`` and ``fpr_gap`` are
"undefined: constant decisions" when every decision (all applicants of all episodes, or of the
resample) is the same: approve-all or deny-all has every group's rates equal by construction, and the
gap of 0 says nothing about how groups are treated. A group whose own decisions are constant does not
make a gap undefined while other groups' decisions vary (denying every B and some A is a real gap).
``flip_rate`` (overall and per group) is undefined when every factual and counterfactual decision is
the same. A gap is also undefined when a group has no applicant in the rates' denominator (no applicant,
no one who would repay for ``tpr``, no one who would default for ``fpr``). Profit, rates, score changes,
agreement stay defined.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from lorafair.studies.base import ItemSet, MetricRow
from lorafair.studies.decisions.simulator import EpisodeLog

UNDEFINED_CONSTANT = "undefined: constant decisions"
# per-episode count columns "<kind>:<group>" of :func:`episode_items`
COUNTS = ("n", "approved", "pos", "tp", "neg", "fp", "approved_cf", "flips")
RATES = {"approval_rate": ("approved", "n"), "tpr": ("tp", "pos"), "fpr": ("fp", "neg")}
GAPS = {"approval_gap": "approval_rate", "tpr_gap": "tpr", "fpr_gap": "fpr"}
_DENOMINATOR = {"n": "no applicant", "pos": "no applicant who would repay", "neg": "no applicant who would default"}


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    d = den.sum()
    return float(num.sum() / d) if d > 0 else float("nan")


def _gap(values: list[float]) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(max(v) - min(v)) if len(v) == len(values) and v else float("nan")


# -- per-episode items ---------------------------------------------------------------------------

def episode_items(log: EpisodeLog) -> ItemSet:
    """One item per episode (id: the episode index). Columns: per group g the counts ``n:g`` (applicants),
    ``approved:g``, ``pos:g`` (would repay), ``tp:g``, ``neg:g`` (would default), ``fp:g``,
    ``approved_cf:g`` (approved with the group changed), ``flips:g``, and the group's mean score
    ``start:g`` / ``end:g``; ``profit`` (mean per applicant) and ``agree`` (share agreeing with the
    reference policy)."""
    E, _ = log.group.shape
    d, y, dcf = log.approved.astype(float), log.would_repay.astype(float), log.approved_cf.astype(float)
    cols: dict[str, np.ndarray] = {}
    for k, g in enumerate(log.groups):
        m = (log.group == k).astype(float)
        parts = {"n": m, "approved": m * d, "pos": m * y, "tp": m * d * y, "neg": m * (1 - y), "fp": m * d * (1 - y),
                 "approved_cf": m * dcf, "flips": m * np.abs(d - dcf)}
        for name in COUNTS:
            cols[f"{name}:{g}"] = parts[name].sum(axis=1)
        cols[f"start:{g}"] = log.mean_score[:, 0, k]
        cols[f"end:{g}"] = log.mean_score[:, -1, k]
    cols["profit"] = log.profit.mean(axis=1)
    cols["agree"] = (log.approved == log.reference).mean(axis=1)
    return ItemSet([str(e) for e in range(E)], cols)


def groups_of(c: dict[str, np.ndarray]) -> list[str]:
    """The groups of an episode item set, in their order."""
    return [k[2:] for k in c if k.startswith("n:")]


def _sum(c, kind: str, g: str) -> np.ndarray:
    return np.atleast_2d(c[f"{kind}:{g}"]).sum(-1)


def _div(a, b) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def rate(name: str, group: str = "") -> Callable[[dict], np.ndarray]:
    """Statistic: a pooled rate of :data:`RATES` of one group ("" = all applicants)."""
    num, den = RATES[name]

    def stat(c):
        gs = [group] if group else groups_of(c)
        return _div(sum(_sum(c, num, g) for g in gs), sum(_sum(c, den, g) for g in gs))

    return stat


def constant(c: dict[str, np.ndarray], counterfactual: bool = False) -> np.ndarray:
    """(B,) True where every decision (with ``counterfactual``: every factual and counterfactual one) is the same."""
    gs = groups_of(c)
    n = sum(_sum(c, "n", g) for g in gs)
    yes = sum(_sum(c, "approved", g) for g in gs)
    if counterfactual:
        yes, n = yes + sum(_sum(c, "approved_cf", g) for g in gs), 2 * n
    return (yes == 0) | (yes == n)


def gap(name: str) -> Callable[[dict], np.ndarray]:
    """Statistic: max − min over groups of the rate ``name``; NaN where a group's rate is undefined or
    the decisions are constant."""

    def stat(c):
        r = np.stack([rate(name, g)(c) for g in groups_of(c)], axis=-1)
        with np.errstate(invalid="ignore"):
            out = r.max(axis=-1) - r.min(axis=-1)  # NaN where a group's rate is NaN
        return np.where(constant(c), np.nan, out)

    return stat


def flip_rate(group: str = "") -> Callable[[dict], np.ndarray]:
    """Statistic: the share of decisions that flip with the group (of one group's applicants); NaN where
    every factual and counterfactual decision is the same."""

    def stat(c):
        gs = [group] if group else groups_of(c)
        out = _div(sum(_sum(c, "flips", g) for g in gs), sum(_sum(c, "n", g) for g in gs))
        return np.where(constant(c, counterfactual=True), np.nan, out)

    return stat


def mean_of(col: str) -> Callable[[dict], np.ndarray]:
    return lambda c: np.atleast_2d(c[col]).mean(-1)


def score_change(group: str) -> Callable[[dict], np.ndarray]:
    return lambda c: (np.atleast_2d(c[f"end:{group}"]) - np.atleast_2d(c[f"start:{group}"])).mean(-1)


def final_score_gap(c: dict[str, np.ndarray]) -> np.ndarray:
    m = np.stack([np.atleast_2d(c[f"end:{g}"]).mean(-1) for g in groups_of(c)], axis=-1)
    return m.max(axis=-1) - m.min(axis=-1)


# the overall statistics by metric name (the paired statistics of the study's metric_specs)
STATS: dict[str, Callable[[dict], np.ndarray]] = {
    "approval_gap": gap("approval_rate"), "tpr_gap": gap("tpr"), "fpr_gap": gap("fpr"),
    "approval_rate": rate("approval_rate"), "profit": mean_of("profit"), "final_score_gap": final_score_gap,
    "flip_rate": flip_rate(), "agreement": mean_of("agree"),
}


def _bootstrap(stat, cols: dict[str, np.ndarray], n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float, float]:
    """(point, low, high): the statistic of the episodes and its percentile interval over ``n_boot``
    resamples of episodes (resamples where it is undefined left out)."""
    E = len(next(iter(cols.values())))
    point = float(stat({k: v[None, :] for k, v in cols.items()})[0]) if E else float("nan")
    if E < 2:
        return point, float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, E, size=(n_boot, E))
    draws = np.asarray(stat({k: v[idx] for k, v in cols.items()}), dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return point, float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
    return point, float(lo), float(hi)


def _row(metric: str, stat, cols, n: int, n_boot: int, seed: int, group: str = "", note: str = "") -> MetricRow:
    point, lo, hi = _bootstrap(stat, cols, n_boot, seed)
    if note or not np.isfinite(point):
        return MetricRow(metric, float("nan"), None, None, n, group, note or "undefined")
    return MetricRow(metric, point, lo, hi, n, group)


def gap_note(name: str, cols: dict[str, np.ndarray]) -> str:
    """Why the gap ``name`` of :data:`GAPS` is undefined on these episodes ("" when it is defined)."""
    c = {k: v[None, :] for k, v in cols.items()}
    if constant(c)[0]:
        return UNDEFINED_CONSTANT
    den = RATES[GAPS[name]][1]
    empty = [g for g in groups_of(c) if _sum(c, den, g)[0] == 0]
    return f"undefined: {_DENOMINATOR[den]} in group {', '.join(empty)}" if empty else ""


def compute_metrics(log: EpisodeLog, *, n_boot: int = 1000, seed: int = 0, agreement: bool = True) -> list[MetricRow]:
    """All metrics of the module docstring, per group and overall, with bootstrap intervals over episodes."""
    return metrics_from_items(episode_items(log).columns, n_boot=n_boot, seed=seed, agreement=agreement)


def metrics_from_items(cols: dict[str, np.ndarray], *, n_boot: int = 1000, seed: int = 0, agreement: bool = True) -> list[MetricRow]:
    """The rows of :func:`compute_metrics` from the per-episode columns of :func:`episode_items`."""
    groups = groups_of(cols)
    E = len(next(iter(cols.values())))
    total = lambda kind, g: int(cols[f"{kind}:{g}"].sum())  # noqa: E731
    n_all = sum(total("n", g) for g in groups)
    rows: list[MetricRow] = []
    for name, (_, den) in RATES.items():
        for g in groups:
            rows.append(_row(name, rate(name, g), cols, total(den, g), n_boot, seed, g,
                             "" if total(den, g) else f"undefined: {_DENOMINATOR[den]} in group {g}"))
        gname = name.replace("_rate", "") + "_gap"
        rows.append(_row(gname, STATS[gname], cols, E, n_boot, seed, note=gap_note(gname, cols)))
    rows.append(_row("approval_rate", STATS["approval_rate"], cols, n_all, n_boot, seed))
    rows.append(_row("profit", STATS["profit"], cols, E, n_boot, seed))
    for g in groups:
        rows.append(_row("score_change", score_change(g), cols, E, n_boot, seed, g))
    rows.append(_row("final_score_gap", final_score_gap, cols, E, n_boot, seed))
    flip_note = UNDEFINED_CONSTANT if constant({k: v[None, :] for k, v in cols.items()}, counterfactual=True)[0] else ""
    for g in groups:
        rows.append(_row("flip_rate", flip_rate(g), cols, total("n", g), n_boot, seed, g, flip_note))
    rows.append(_row("flip_rate", STATS["flip_rate"], cols, n_all, n_boot, seed, note=flip_note))
    if agreement:
        rows.append(_row("agreement", STATS["agreement"], cols, n_all, n_boot, seed))
    return rows


def trajectory(log: EpisodeLog) -> dict[str, Any]:
    """Per-round curves for the report: the approval gap among the round's applicants (pooled over
    episodes; None when a group had no applicant that round or when every decision of the round was the
    same: constant decisions), the cumulative approval gap up to the round (None likewise), and each
    group's mean score after the round (averaged over episodes; the initial means are in
    ``mean_score_initial``)."""
    E, T = log.group.shape
    G = len(log.groups)

    def gap_of(approved: np.ndarray, group: np.ndarray):
        if approved.all() or not approved.any():
            return None  # constant decisions
        g = _gap([_ratio(approved[group == k], np.ones((group == k).sum())) for k in range(G)])
        return g if np.isfinite(g) else None

    per_round, cumulative = [], []
    for t in range(T):
        per_round.append(gap_of(log.approved[:, t], log.group[:, t]))
        cumulative.append(gap_of(log.approved[:, : t + 1], log.group[:, : t + 1]))
    means = log.mean_score.mean(axis=0)  # (T+1) × G
    return {
        "round": list(range(1, T + 1)),
        "approval_gap": per_round,
        "approval_gap_cumulative": cumulative,
        "mean_score": {g: [float(v) for v in means[1:, k]] for k, g in enumerate(log.groups)},
        "mean_score_initial": {g: float(means[0, k]) for k, g in enumerate(log.groups)},
        "episodes": E,
    }
