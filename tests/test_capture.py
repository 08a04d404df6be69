import math

import numpy as np
import pytest

from lorafair.stats.capture import capture_ratio


def test_scalar_point_value():
    r = capture_ratio(0.8, 0.5, 0.2)
    assert r.value == pytest.approx(0.5) and r.defined
    assert "not tested" in r.reason and math.isnan(r.ci_low)
    # direction does not matter (higher-is-better metric)
    assert capture_ratio(0.2, 0.5, 0.8).value == pytest.approx(0.5)
    assert capture_ratio(0.8, 0.8, 0.2).value == 0.0
    assert capture_ratio(0.8, 0.2, 0.2).value == 1.0


def test_paired_per_item_simulated():
    rng = np.random.default_rng(1)
    n = 400
    base = rng.normal(0.6, 0.1, n)
    full = base - 0.4 + rng.normal(0, 0.02, n)
    variant = base - 0.3 + rng.normal(0, 0.02, n)  # true capture 0.75
    r = capture_ratio(base, variant, full, seed=3)
    assert r.defined and r.method == "paired-bootstrap" and r.n == n
    assert r.value == pytest.approx((base.mean() - variant.mean()) / (base.mean() - full.mean()))
    assert r.ci_low < 0.75 < r.ci_high
    # delta method on the paired per-item differences: capture = 1 − mean(v − f)/mean(b − f)
    d_bf, d_vf = base - full, variant - full
    mb, mv = d_bf.mean(), d_vf.mean()
    g = np.stack([d_vf / mb ** 2 * 1.0, -np.ones(n) / mb])  # d/d mean(b−f), d/d mean(v−f) of 1 − mv/mb
    cov = np.cov(np.stack([d_bf, d_vf])) / n
    se = math.sqrt(np.array([mv / mb ** 2, -1 / mb]) @ cov @ np.array([mv / mb ** 2, -1 / mb]))
    assert (r.ci_high - r.ci_low) / 2 == pytest.approx(1.959963984540054 * se, rel=0.15)
    # reproducible
    assert capture_ratio(base, variant, full, seed=3) == r


def test_unpaired_when_lengths_differ():
    rng = np.random.default_rng(2)
    r = capture_ratio(rng.normal(1, 0.1, 100), rng.normal(0.5, 0.1, 80), rng.normal(0, 0.1, 90))
    assert r.method == "unpaired-bootstrap" and r.defined and 0.4 < r.value < 0.6


def test_undefined_when_base_and_full_do_not_differ():
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.2, 50)
    full = base + rng.normal(0, 0.2, 50)  # no systematic change
    r = capture_ratio(base, base - 0.1, full)
    assert not r.defined and math.isnan(r.value) and "contains 0" in r.reason
    r = capture_ratio(0.5, 0.4, 0.5)
    assert not r.defined and "same value" in r.reason
    r = capture_ratio(0.5, 0.4, 0.45, base_ci=(0.4, 0.6), full_ci=(0.35, 0.55))
    assert not r.defined and "overlap" in r.reason


def test_scalar_with_intervals():
    r = capture_ratio(0.8, 0.5, 0.2, base_ci=(0.78, 0.82), variant_ci=(0.48, 0.52), full_ci=(0.18, 0.22))
    assert r.defined and r.method == "normal-from-ci" and r.reason == ""
    assert r.value == pytest.approx(0.5) and r.ci_low < 0.5 < r.ci_high
    # delta method: se of each = 0.04 / (2·1.96); gradient of (b − v)/(b − f) = (0.833, −1.667, 0.833)
    se = 0.04 / (2 * 1.959963984540054)
    half = 1.959963984540054 * se * math.sqrt(0.3 ** 2 / 0.6 ** 4 + 1 / 0.6 ** 2 + 0.3 ** 2 / 0.6 ** 4)
    assert (r.ci_high - r.ci_low) / 2 == pytest.approx(half, rel=0.1)


def test_mixed_inputs_rejected():
    with pytest.raises(ValueError, match="all be scalars"):
        capture_ratio([1.0, 2.0], 0.5, 0.1)


