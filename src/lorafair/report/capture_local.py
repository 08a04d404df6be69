"""Shift-capture ratio from the summary numbers of metrics.csv (the report's own computation).

The shift-capture ratio of a variant ``v`` for a metric ``m`` (DESIGN.md) is

    C(v) = (m(base) − m(v)) / (m(base) − m(full))

1 means the variant moved the metric as far as full fine-tuning did, 0 means not at all; it
does not depend on whether the metric is better high or low.

The report only has each variant's value and 95% interval (not the per-item scores), so the
interval of C is obtained by a seeded parametric bootstrap: each of m(base), m(v), m(full) is
drawn from a normal with the standard error implied by its interval (independently: they are
different models), C is computed per draw, and the 2.5/97.5 percentiles are taken.

C is *undefined* when base and full do not differ: ``m(base) == m(full)``, or the 95% interval
of ``m(base) − m(full)`` (normal, from the same standard errors) contains 0.

NOTE for the lead: ``lorafair.stats.capture.capture_ratio`` (owned by the shift study) is the
canonical implementation from per-item data; :func:`capture_from_estimates` should delegate to
it once its signature for summary estimates is settled. Only this module would change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lorafair.report.load import Z95, Estimate

N_DRAWS = 4000


@dataclass(frozen=True)
class CaptureResult:
    value: float
    ci_low: float
    ci_high: float
    defined: bool
    reason: str = ""


def capture_from_estimates(base: Estimate, variant: Estimate, full: Estimate, *, seed: int = 0,
                           n_draws: int = N_DRAWS) -> CaptureResult:
    """Capture ratio of ``variant`` between ``base`` and ``full`` with a parametric-bootstrap interval."""
    nan = float("nan")
    b, v, f = base.value, variant.value, full.value
    if any(math.isnan(x) for x in (b, v, f)):
        return CaptureResult(nan, nan, nan, False, "a value is missing")
    denom = b - f
    if denom == 0:
        return CaptureResult(nan, nan, nan, False, "base and full do not differ (equal values)")
    se = [0.0 if math.isnan(e.se) else e.se for e in (base, variant, full)]
    se_denom = math.hypot(se[0], se[2])
    if se_denom > 0 and abs(denom) <= Z95 * se_denom:
        return CaptureResult(nan, nan, nan, False,
                             f"base and full do not differ (base − full = {denom:.3g}, 95% interval "
                             f"[{denom - Z95 * se_denom:.3g}, {denom + Z95 * se_denom:.3g}] contains 0)")
    value = (b - v) / denom
    if not any(se):
        return CaptureResult(value, nan, nan, True, "no intervals in metrics.csv: point value only")
    rng = np.random.default_rng(seed)
    bb = rng.normal(b, se[0], n_draws)
    vv = rng.normal(v, se[1], n_draws)
    ff = rng.normal(f, se[2], n_draws)
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = (bb - vv) / (bb - ff)
    draws = draws[np.isfinite(draws)]
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return CaptureResult(float(value), float(lo), float(hi), True)
