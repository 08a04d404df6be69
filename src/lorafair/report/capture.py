"""Shift-capture ratios for the report, from the summary estimates of metrics.csv.

The computation is :func:`lorafair.stats.capture.capture_ratio` (scalar mode: each metric's
value with its 95% interval, a parametric bootstrap, "undefined" when the intervals of base
and full overlap or their values are equal). This module only adapts the report's
:class:`~lorafair.report.load.Estimate` to it:

    C(v) = (m(base) − m(v)) / (m(base) − m(full))

1 means the variant moved the metric as far as full fine-tuning did, 0 not at all.
"""

from __future__ import annotations

from typing import Optional

from lorafair.report.load import Estimate
from lorafair.stats.capture import CaptureResult, capture_ratio

__all__ = ["CaptureResult", "capture_from_estimates"]


def _ci(e: Estimate) -> Optional[tuple[float, float]]:
    return (e.ci_low, e.ci_high) if e.has_ci else None


def capture_from_estimates(base: Estimate, variant: Estimate, full: Estimate, *, seed: int = 0) -> CaptureResult:
    """Capture ratio of ``variant`` between ``base`` and ``full`` (intervals used where present)."""
    return capture_ratio(base.value, variant.value, full.value, base_ci=_ci(base), variant_ci=_ci(variant),
                         full_ci=_ci(full), seed=seed)
