"""Paired bootstrap of a metric across models evaluated on the same items.

Every variant of a run is evaluated on the same items (prompts, pairs, examples, sequences) with
common random numbers, so differences between variants are measured *paired*: one bootstrap
resample draws item indices once and applies them to base, variant and full alike. Item-to-item
variance, which dominates the interval of each model's own metric, then cancels in the comparison.

A metric is a vectorised statistic ``stat(cols) -> (B,)`` of an item set's columns, each given as a
(B, n) array of B resamples (see :data:`lorafair.studies.base.ItemStat`); helpers below build the
usual ones (mean, group means, max − min gap over groups, ratios of sums).

- :func:`paired_draws`: point values and bootstrap draws of a statistic for several aligned models.
- :func:`capture_from_draws`: the shift-capture ratio (m(b) − m(v)) / (m(b) − m(f)) with its interval,
  "undefined" when the paired interval of m(b) − m(f) contains 0.
- :func:`delta_from_draws`: m(v) − m(b) with its paired interval.

Where a metric has an ideal *value* (StereoSet SS 50, a bias score 0) the capture quantity is the
distance to it, |m − ideal|, so moving towards the ideal counts and moving past it does not.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from lorafair.stats.capture import CaptureResult, quantiles as _quantiles

GROUP_PREFIX = "g:"
_CHUNK_ELEMENTS = 4_000_000  # resample rows × items per chunk, to bound memory on large item sets


# -- statistics ------------------------------------------------------------------------------

def mean(col: str):
    """The mean of column ``col`` (NaN in a resample with no finite value)."""

    def stat(c):
        return np.nanmean(c[col], axis=-1) if np.isnan(c[col]).any() else c[col].mean(axis=-1)

    return stat


def ratio_of_sums(num: str, den: str, scale: float = 1.0):
    """sum(num) / sum(den) × scale (a token-weighted mean, a rate among eligible items…)."""

    def stat(c):
        d = c[den].sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d > 0, c[num].sum(axis=-1) / np.where(d > 0, d, 1.0), np.nan) * scale

    return stat


def group_columns(groups: Sequence[str]) -> dict[str, np.ndarray]:
    """0/1 indicator columns ``g:<group>`` of per-item group labels, one per distinct group (sorted)."""
    g = np.asarray([str(x) for x in groups], dtype=object)
    return {f"{GROUP_PREFIX}{name}": (g == name).astype(np.float64) for name in sorted(set(g.tolist()))}


def text_digest(*texts: str) -> str:
    """A short stable digest of an item's texts, for item ids that are the same in every variant."""
    import hashlib

    return hashlib.sha1("\0".join(texts).encode("utf-8", "surrogatepass")).hexdigest()[:12]


def groups_of(cols: dict[str, np.ndarray]) -> list[str]:
    """The group indicator columns (``g:<name>``) of an item set, sorted."""
    return sorted(k for k in cols if k.startswith(GROUP_PREFIX))


def group_means(c: dict[str, np.ndarray], col: str, weight: Optional[str] = None) -> np.ndarray:
    """(B, G) means of ``col`` within each group (weighted by column ``weight`` when given); NaN for
    a group absent from a resample."""
    gs = groups_of(c)
    x = c[col]
    w = c[weight] if weight else None
    out = []
    for g in gs:
        m = c[g] if w is None else c[g] * w
        den = m.sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.where(den > 0, (x * m).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan))
    return np.stack(out, axis=-1) if out else np.full(x.shape[:-1] + (0,), np.nan)


def group_gap(col: str, weight: Optional[str] = None):
    """max − min over groups of the group means of ``col``; NaN when a group is missing or < 2 groups."""

    def stat(c):
        gm = group_means(c, col, weight)
        if gm.shape[-1] < 2:
            return np.full(gm.shape[:-1], np.nan)
        bad = np.isnan(gm).any(axis=-1)
        with np.errstate(invalid="ignore"):
            gap = np.nanmax(np.where(np.isnan(gm), -np.inf, gm), axis=-1) - np.nanmin(np.where(np.isnan(gm), np.inf, gm), axis=-1)
        return np.where(bad, np.nan, gap)

    return stat


# -- paired resampling -------------------------------------------------------------------------

def align(item_sets: Sequence[tuple[list[str], dict[str, np.ndarray]]]) -> tuple[list[str], list[dict[str, np.ndarray]]]:
    """Restrict several models' item sets to the items they share, in the first one's order.

    Returns the shared ids and, per model, its columns in that order. Items a model lacks are
    dropped for all (a study that skipped an item on one model must not bias the comparison).
    """
    first_ids = list(item_sets[0][0])
    common = set(first_ids)
    for ids, _ in item_sets[1:]:
        common &= set(ids)
    shared = [i for i in first_ids if i in common]
    out = []
    for ids, cols in item_sets:
        if list(ids) == shared:
            out.append(dict(cols))
            continue
        pos = {i: k for k, i in enumerate(ids)}
        sel = np.array([pos[i] for i in shared], dtype=np.int64)
        out.append({k: np.asarray(v)[sel] for k, v in cols.items()})
    return shared, out


def paired_draws(stat, models: Sequence[dict[str, np.ndarray]], *, n_boot: int = 2000, seed: int = 0
                 ) -> tuple[list[float], list[np.ndarray]]:
    """Point values and ``n_boot`` paired bootstrap draws of ``stat`` for each model.

    Every model's columns must hold the same n items in the same order (see :func:`align`); the
    same resampled indices are used for all of them.
    """
    n = len(next(iter(models[0].values()))) if models[0] else 0
    points = [float(np.asarray(stat({k: v[None, :] for k, v in m.items()}))[0]) if n else float("nan") for m in models]
    if n < 2:
        return points, [np.full(n_boot, np.nan) for _ in models]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    step = max(1, _CHUNK_ELEMENTS // n)
    draws = [np.empty(n_boot) for _ in models]
    for s in range(0, n_boot, step):
        block = idx[s:s + step]
        for d, m in zip(draws, models):
            d[s:s + step] = stat({k: v[block] for k, v in m.items()})
    return points, draws


def _distance(x, ideal: Optional[float]):
    return x if ideal is None else np.abs(np.asarray(x, dtype=np.float64) - ideal)


def capture_from_draws(points: Sequence[float], draws: Sequence[np.ndarray], *, ideal: Optional[float] = None,
                       level: float = 0.95, n: Optional[int] = None) -> CaptureResult:
    """Capture ratio of a variant from paired (base, variant, full) point values and draws.

    Undefined (value NaN, with the reason) when a model's metric is undefined, when base and full
    have the same value, or when the paired interval of m(base) − m(full) contains 0. With an
    ``ideal`` the quantity compared is the distance to it.
    """
    pb, pv, pf = (float(_distance(p, ideal)) for p in points)
    db, dv, df = (_distance(d, ideal) for d in draws)
    nan = float("nan")
    method = "paired-bootstrap" + (f", distance to {ideal:g}" if ideal is not None else "")

    def undefined(reason):
        return CaptureResult(nan, nan, nan, False, reason, n, method)

    for name, p in (("base", pb), ("variant", pv), ("full", pf)):
        if not np.isfinite(p):
            return undefined(f"the metric is undefined for {name}")
    if pb == pf:
        return undefined("base and full have the same value")
    lo_d, hi_d = _quantiles(db - df, level)
    if np.isnan(lo_d) or not (lo_d > 0 or hi_d < 0):
        what = "distance to the ideal" if ideal is not None else "m(base) - m(full)"
        return undefined(f"base and full do not differ significantly: paired {level:.0%} interval of {what} "
                         f"difference is [{lo_d:.4g}, {hi_d:.4g}], which contains 0")
    den = db - df
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(den != 0, (db - dv) / np.where(den != 0, den, 1.0), np.nan)
    lo, hi = _quantiles(ratio, level)
    return CaptureResult((pb - pv) / (pb - pf), lo, hi, True, "", n, method)


def delta_from_draws(point_b: float, point_v: float, draw_b: np.ndarray, draw_v: np.ndarray, *,
                     level: float = 0.95) -> tuple[float, float, float]:
    """m(variant) − m(base) with its paired percentile interval."""
    lo, hi = _quantiles(np.asarray(draw_v) - np.asarray(draw_b), level)
    return float(point_v - point_b), lo, hi
