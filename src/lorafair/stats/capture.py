"""Shift-capture ratio: how much of full fine-tuning's change a variant reproduces.

For a scalar metric m (toxicity, a bias score, an accuracy gap …) measured on the base model, a
variant v and the fully fine-tuned model:

    capture(v) = (m(base) − m(v)) / (m(base) − m(full))

1 means v moved as far as full fine-tuning, 0 means it did not move, < 0 means it moved the other
way, > 1 means it overshot. It does not depend on whether lower or higher is better. For the
posterior KL of the shift study, with m(x) = KL(P_full ‖ P_x) (so m(full) = 0), it is
1 − KL(P_full‖P_v) / KL(P_full‖P_base) (the runner's ``capture_kl_full_v``).

Intervals (percentile bootstrap, ``level`` two-sided):

- **per-item values** (arrays for base, variant and full): when the three arrays have the same
  length they are taken as *paired* (item i is the same prompt for every model) and items are
  resampled jointly; with different lengths each array is resampled on its own (unpaired). The
  statistic of each array is ``stat`` (mean by default).
- **scalars with intervals** (``base_ci`` …): each metric is approximated by a normal distribution
  with its point value as mean and standard error (ci_high − ci_low) / (2·z_{level}); draws of the
  three are independent (a parametric bootstrap). This ignores any pairing between the models, so
  its interval is wider than the paired one — for items shared by the models, much wider: prefer
  per-item values when a study has them (the runner does: :mod:`lorafair.run.paired`).
- **scalars without intervals**: the point value only; significance cannot be tested, which the
  ``reason`` says.

The ratio is **undefined** (``value`` NaN, ``defined`` False, ``reason`` saying why) when base and
full do not differ significantly: with per-item values, when the bootstrap interval of
m(base) − m(full) contains 0; with scalar intervals, when the intervals of base and full overlap;
always when m(base) == m(full).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Callable, Optional, Sequence, Union

import numpy as np

Number = Union[int, float]
ArrayLike = Union[Sequence[float], np.ndarray]


@dataclass(frozen=True)
class CaptureResult:
    """A capture ratio with its interval. ``defined`` is False (and value NaN) when base and full do
    not differ significantly; ``reason`` then says why (empty when defined and fully tested)."""

    value: float
    ci_low: float
    ci_high: float
    defined: bool
    reason: str = ""
    n: Optional[int] = None  # items (per-item mode) or None
    method: str = ""  # "paired-bootstrap" | "unpaired-bootstrap" | "normal-from-ci" | "point"

    def as_dict(self) -> dict:
        return asdict(self)


def _ratio(b: np.ndarray, v: np.ndarray, f: np.ndarray) -> np.ndarray:
    den = b - f
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, (b - v) / np.where(den != 0, den, 1.0), np.nan)


def _undefined(reason: str, n=None, method="") -> CaptureResult:
    nan = float("nan")
    return CaptureResult(nan, nan, nan, False, reason, n, method)


def quantiles(x: np.ndarray, level: float) -> tuple[float, float]:
    """The two-sided percentile interval of the finite values of ``x`` (NaN, NaN when there are none)."""
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    lo, hi = np.quantile(x, [a, 1 - a])
    return float(lo), float(hi)


def capture_ratio(
    base: Union[Number, ArrayLike],
    variant: Union[Number, ArrayLike],
    full: Union[Number, ArrayLike],
    *,
    base_ci: Optional[tuple[float, float]] = None,
    variant_ci: Optional[tuple[float, float]] = None,
    full_ci: Optional[tuple[float, float]] = None,
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> CaptureResult:
    """Capture ratio (m(base) − m(variant)) / (m(base) − m(full)) with a bootstrap interval.

    Pass either three per-item arrays (paired if equal length) or three scalars, optionally with
    their ``*_ci`` intervals. See the module docstring for how intervals and "undefined" are decided.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    scalars = [np.ndim(x) == 0 for x in (base, variant, full)]
    if all(scalars):
        return _from_scalars(float(base), float(variant), float(full), base_ci, variant_ci, full_ci, n_boot, level, seed)
    if any(scalars):
        raise ValueError("base, variant and full must all be scalars or all be per-item arrays")
    b, v, f = (np.asarray(x, dtype=np.float64).ravel() for x in (base, variant, full))
    if min(b.size, v.size, f.size) == 0:
        return _undefined("no items", 0, "")
    paired = b.size == v.size == f.size
    method = "paired-bootstrap" if paired else "unpaired-bootstrap"
    mb, mv, mf = float(stat(b)), float(stat(v)), float(stat(f))
    n = int(b.size) if paired else int(min(b.size, v.size, f.size))
    if mb == mf:
        return _undefined("base and full have the same value", n, method)
    rng = np.random.default_rng(seed)
    if paired:
        idx = rng.integers(0, b.size, size=(n_boot, b.size))
        ib = iv = i_f = idx
    else:
        ib = rng.integers(0, b.size, size=(n_boot, b.size))
        iv = rng.integers(0, v.size, size=(n_boot, v.size))
        i_f = rng.integers(0, f.size, size=(n_boot, f.size))
    if stat is np.mean:
        sb, sv, sf = b[ib].mean(1), v[iv].mean(1), f[i_f].mean(1)
    else:
        sb = np.array([stat(b[i]) for i in ib])
        sv = np.array([stat(v[i]) for i in iv])
        sf = np.array([stat(f[i]) for i in i_f])
    dlo, dhi = quantiles(sb - sf, level)
    if not (dlo > 0 or dhi < 0):
        return _undefined(
            f"base and full do not differ significantly: {level:.0%} bootstrap interval of "
            f"m(base) - m(full) is [{dlo:.4g}, {dhi:.4g}], which contains 0",
            n, method,
        )
    lo, hi = quantiles(_ratio(sb, sv, sf), level)
    value = float(_ratio(np.array(mb), np.array(mv), np.array(mf)))
    return CaptureResult(value, lo, hi, True, "", n, method)


def _from_scalars(b, v, f, base_ci, variant_ci, full_ci, n_boot, level, seed) -> CaptureResult:
    if b == f:
        return _undefined("base and full have the same value", None, "point")
    value = float((b - v) / (b - f))
    if base_ci is None or full_ci is None:
        nan = float("nan")
        return CaptureResult(value, nan, nan, True, "no intervals given for base and full: significance not tested", None, "point")
    bl, bh = sorted(map(float, base_ci))
    fl, fh = sorted(map(float, full_ci))
    if not (bh < fl or fh < bl):
        return _undefined(
            f"base and full do not differ significantly: their intervals [{bl:.4g}, {bh:.4g}] and [{fl:.4g}, {fh:.4g}] overlap",
            None, "normal-from-ci",
        )
    z = NormalDist().inv_cdf(0.5 + level / 2)

    def se(ci):
        if ci is None:
            return 0.0
        lo, hi = sorted(map(float, ci))
        return (hi - lo) / (2 * z) if np.isfinite(hi - lo) else 0.0

    rng = np.random.default_rng(seed)
    sb = b + se(base_ci) * rng.standard_normal(n_boot)
    sv = v + se(variant_ci) * rng.standard_normal(n_boot)
    sf = f + se(full_ci) * rng.standard_normal(n_boot)
    lo, hi = quantiles(_ratio(sb, sv, sf), level)
    reason = "" if variant_ci is not None else "no interval given for the variant: its uncertainty is ignored"
    return CaptureResult(value, lo, hi, True, reason, None, "normal-from-ci")
