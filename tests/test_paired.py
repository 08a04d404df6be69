"""Paired statistics across variants (lorafair.stats.paired, lorafair.run.paired): capture ratios and
differences from per-item values, checked against hand values, the delta method and a coverage loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lorafair.run.paired import load_items, paired_rows, save_items
from lorafair.stats import paired as ps
from lorafair.studies.base import ItemSet, MetricSpec


def _cols(x, **extra):
    return {"x": np.asarray(x, dtype=np.float64), **{k: np.asarray(v, dtype=np.float64) for k, v in extra.items()}}


def test_identical_to_full_is_exactly_one_and_identical_to_base_exactly_zero():
    rng = np.random.default_rng(0)
    b = rng.normal(0.6, 0.2, 100)
    f = b - 0.3 + rng.normal(0, 0.05, 100)
    for v, want in ((f, 1.0), (b, 0.0)):
        points, draws = ps.paired_draws(ps.mean("x"), [_cols(b), _cols(v), _cols(f)], n_boot=500)
        c = ps.capture_from_draws(points, draws, n=100)
        assert c.defined and (c.value, c.ci_low, c.ci_high) == pytest.approx((want, want, want), abs=1e-12)


def test_paired_interval_is_much_narrower_than_unpaired_and_matches_the_delta_method():
    """The issue's case: per-item values with large item-to-item spread and a small, consistent change."""
    rng = np.random.default_rng(1)
    n = 300
    b = rng.beta(2, 5, n)  # items differ a lot
    f = b - 0.10 + rng.normal(0, 0.02, n)
    v = b - 0.08 + rng.normal(0, 0.02, n)
    points, draws = ps.paired_draws(ps.mean("x"), [_cols(b), _cols(v), _cols(f)], n_boot=4000, seed=2)
    c = ps.capture_from_draws(points, draws, n=n)
    mb, mv = (b - f).mean(), (v - f).mean()
    grad = np.array([mv / mb ** 2, -1 / mb])
    se = math.sqrt(grad @ (np.cov(np.stack([b - f, v - f])) / n) @ grad)
    assert c.value == pytest.approx(1 - mv / mb)
    assert (c.ci_high - c.ci_low) / 2 == pytest.approx(1.96 * se, rel=0.15)
    assert c.ci_high - c.ci_low < 0.1  # the unpaired interval of the same data is ~[0.5, 1.7]


def test_coverage_of_the_paired_capture_interval():
    rng = np.random.default_rng(3)
    n, sims, hits = 150, 200, 0
    for s in range(sims):
        b = rng.normal(0.5, 0.2, n)
        f = b - 0.2 + rng.normal(0, 0.05, n)
        v = b - 0.15 + rng.normal(0, 0.05, n)  # true capture 0.75
        points, draws = ps.paired_draws(ps.mean("x"), [_cols(b), _cols(v), _cols(f)], n_boot=400, seed=s)
        c = ps.capture_from_draws(points, draws, n=n)
        hits += c.ci_low <= 0.75 <= c.ci_high
    assert 0.90 <= hits / sims <= 0.99


def test_ideal_value_uses_distance_so_overshoot_past_the_ideal_does_not_count():
    # SS: base 60, full 55; a variant at 40 is as far from 50 as base (capture 0), one at 45 is as close as full
    pts = lambda v: [60.0, v, 55.0]  # noqa: E731
    draws = lambda v: [np.full(10, 60.0), np.full(10, v), np.full(10, 55.0)]  # noqa: E731
    assert ps.capture_from_draws(pts(40.0), draws(40.0), ideal=50).value == pytest.approx(0.0)
    assert ps.capture_from_draws(pts(45.0), draws(45.0), ideal=50).value == pytest.approx(1.0)
    assert ps.capture_from_draws(pts(40.0), draws(40.0)).value == pytest.approx(4.0)  # without the ideal: 4× full


def test_undefined_when_base_and_full_do_not_differ_or_a_metric_is_undefined():
    rng = np.random.default_rng(4)
    b = rng.normal(0.5, 0.2, 80)
    f = b + rng.normal(0, 0.2, 80)
    points, draws = ps.paired_draws(ps.mean("x"), [_cols(b), _cols(b - 0.1), _cols(f)], n_boot=500)
    c = ps.capture_from_draws(points, draws)
    assert not c.defined and "contains 0" in c.reason and math.isnan(c.value)
    c = ps.capture_from_draws([0.5, float("nan"), 0.1], [np.full(5, 0.5), np.full(5, np.nan), np.full(5, 0.1)])
    assert not c.defined and "undefined for variant" in c.reason


def test_group_gap_ratio_of_sums_and_group_means_by_hand():
    c = {"x": np.array([[1.0, 3.0, 2.0, 6.0]]), "w": np.array([[1.0, 1.0, 2.0, 2.0]]),
         "g:a": np.array([[1.0, 1.0, 0.0, 0.0]]), "g:b": np.array([[0.0, 0.0, 1.0, 1.0]])}
    assert ps.group_means(c, "x").tolist() == [[2.0, 4.0]]
    assert ps.group_gap("x")(c).tolist() == [2.0]
    assert ps.ratio_of_sums("x", "w")(c).tolist() == [pytest.approx(12 / 6)]
    missing = dict(c, **{"g:b": np.zeros((1, 4))})
    assert np.isnan(ps.group_gap("x")(missing)[0])


def test_align_by_id_drops_items_a_model_lacks():
    ids, cols = ps.align([(["a", "b", "c"], {"x": np.array([1.0, 2.0, 3.0])}),
                          (["c", "a"], {"x": np.array([30.0, 10.0])})])
    assert ids == ["a", "c"] and cols[0]["x"].tolist() == [1.0, 3.0] and cols[1]["x"].tolist() == [10.0, 30.0]


def test_items_file_round_trip_and_paired_rows(tmp_path):
    rng = np.random.default_rng(5)
    n = 60
    b = rng.normal(1.0, 0.3, n)
    f = b - 0.5 + rng.normal(0, 0.05, n)
    spec = (MetricSpec("m", "target", "lower", unit="u", stat=ps.mean("x")),
            MetricSpec("g", "guard", "lower", unit="u", stat=ps.mean("y")),
            MetricSpec("d", "diagnostic", "lower", unit="u", stat=ps.mean("x")))
    by = {}
    for name, x in (("base", b), ("full", f), ("lora-r4", f.copy()), ("lora-r1", b.copy())):
        save_items(tmp_path / name, "s", {"u": ItemSet([f"i{k}" for k in range(n)], {"x": x, "y": x * 0 + 1})})
        by[name] = ({"name": name, "method": name.split("-")[0], "rank": None}, load_items(tmp_path / name / "s.items.npz"))
    assert by["full"][1]["u"][1]["x"].tolist() == f.tolist()
    rows = {(r["variant"], r["metric"]): r for r in paired_rows("s", spec, by, 0, n_boot=300)}
    assert (rows[("lora-r4", "capture_m")]["value"], rows[("lora-r4", "capture_m")]["ci_low"],
            rows[("lora-r4", "capture_m")]["ci_high"]) == pytest.approx((1.0, 1.0, 1.0))
    assert rows[("lora-r1", "capture_m")]["value"] == pytest.approx(0.0)
    assert rows[("full", "delta_m")]["value"] == pytest.approx(f.mean() - b.mean())
    assert ("full", "capture_m") not in rows and ("base", "delta_m") not in rows
    assert ("lora-r4", "capture_g") not in rows and ("lora-r4", "delta_g") in rows  # guards: delta only
    assert not any(m.endswith("_d") for _, m in rows)  # diagnostics: nothing
    # a flat guard (same values for all) gives delta 0 [0, 0]
    g = rows[("lora-r4", "delta_g")]
    assert (g["value"], g["ci_low"], g["ci_high"]) == (0.0, 0.0, 0.0)
