"""Bootstrap confidence intervals (percentile), shared by every study.

All functions take a ``seed`` so intervals are reproducible.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    stat: Callable[[np.ndarray], float] = np.mean,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Return (point, ci_low, ci_high) of ``stat`` over ``values`` resampled with replacement.

    ``values`` may be 1-D (items) or 2-D (items × columns, resampled by row). With fewer than
    two items the interval is (nan, nan).
    """
    x = np.asarray(values, dtype=np.float64)
    point = float(stat(x)) if len(x) else float("nan")
    if len(x) < 2:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    stats = np.array([stat(x[i]) for i in idx], dtype=np.float64)
    alpha = (1 - level) / 2
    lo, hi = np.nanquantile(stats, [alpha, 1 - alpha])
    return point, float(lo), float(hi)


def bootstrap_mean_ci(values, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Vectorised bootstrap of the mean (fast path of :func:`bootstrap_ci`)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    point = float(x.mean())
    if len(x) < 2:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    means = x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return point, float(lo), float(hi)


def ratio_ci(
    sums: Sequence[float] | np.ndarray,
    counts: Sequence[float] | np.ndarray,
    *,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point, ci_low, ci_high) of ``transform(Σ sums / Σ counts)`` (e.g. the token-weighted mean NLL,
    or perplexity with ``transform=np.exp``), with a vectorised percentile bootstrap over items (rows are
    resampled as :func:`bootstrap_ci` draws them). A resample with no counts gives nan and is left out of
    the quantiles; fewer than two items give (nan, nan)."""
    s = np.asarray(sums, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    if s.shape != c.shape or s.ndim != 1:
        raise ValueError("sums and counts must be 1-D arrays of the same length")
    f = transform or (lambda v: v)

    def ratio(num, den):
        with np.errstate(divide="ignore", invalid="ignore"):
            return f(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))

    point = float(ratio(s.sum(), c.sum())) if len(s) else float("nan")
    if len(s) < 2:
        return point, float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(s), size=(n_boot, len(s)))
    stats = ratio(s[idx].sum(axis=1), c[idx].sum(axis=1))
    if np.isnan(stats).all():
        return point, float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.nanquantile(stats, [alpha, 1 - alpha])
    return point, float(lo), float(hi)


def paired_bootstrap_ci(
    a: Sequence[float], b: Sequence[float], stat: Callable[[np.ndarray, np.ndarray], float],
    *, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:
    """Bootstrap of a statistic of two aligned samples (same items), resampling items jointly."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[0] != b.shape[0]:
        raise ValueError("paired samples must have the same length")
    point = float(stat(a, b)) if len(a) else float("nan")
    if len(a) < 2:
        return point, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    stats = np.array([stat(a[i], b[i]) for i in idx], dtype=np.float64)
    alpha = (1 - level) / 2
    lo, hi = np.nanquantile(stats, [alpha, 1 - alpha])
    return point, float(lo), float(hi)
