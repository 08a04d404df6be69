"""Capture ratios, rank recommendation, seed pooling and tolerant artifact readers of the report."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from lorafair.errors import UserError
from lorafair.report.artifacts import energy_curves, per_layer_quantities
from lorafair.report.capture import capture_from_estimates
from lorafair.report.load import Estimate, load_run, parse_variant, pool_seeds, sort_variants
from lorafair.report.recommend import recommend
from lorafair.report.study_meta import StudyMeta, study_meta

COLS = ["variant", "method", "rank", "seed", "study", "metric", "group", "value", "ci_low", "ci_high", "n"]


def write_metrics(root: Path, rows: list[tuple]) -> Path:
    """rows: (variant, metric, value, lo, hi) for study "s", seed 0, n 100."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLS)
        for variant, metric, v, lo, hi in rows:
            method, rank = parse_variant(variant)
            w.writerow([variant, method, rank if rank is not None else "", 0, "s", metric, "", v, lo, hi, 100])
    return root


META = {"s": StudyMeta("s", ("m",), frozenset({"m"}), True)}


def test_parse_and_sort_variants():
    assert parse_variant("lora-r8") == ("lora", 8)
    assert parse_variant("rslora-r128") == ("rslora", 128)
    assert parse_variant("base") == ("base", None)
    assert sort_variants(["full", "lora-r16", "dora-r2", "lora-r2", "base"]) == \
        ["base", "lora-r2", "lora-r16", "dora-r2", "full"]


def test_pool_seeds_by_hand():
    # se = 0.4 / (2·1.95996) = 0.102042 each; within = 2·se²/4 = 0.0052063; between = s²/k = 0.5/2 = 0.25
    e = pool_seeds([Estimate(1.0, 0.8, 1.2, 100), Estimate(2.0, 1.8, 2.2, 100)])
    half = 1.959963984540054 * math.sqrt(2 * (0.4 / (2 * 1.959963984540054)) ** 2 / 4 + 0.25)
    assert e.value == pytest.approx(1.5)
    assert e.ci_low == pytest.approx(1.5 - half) and e.ci_high == pytest.approx(1.5 + half)
    assert half == pytest.approx(0.99014, abs=1e-4)
    assert e.n == 200 and e.seeds == 2
    one = Estimate(0.3, 0.2, 0.4, 10)
    assert pool_seeds([one]) is one


def test_capture_value_and_undefined():
    c = capture_from_estimates(Estimate(1.0, 0.99, 1.01), Estimate(0.05, 0.04, 0.06), Estimate(0.0, -0.01, 0.01))
    assert c.defined and c.value == pytest.approx(0.95)
    assert 0.9 < c.ci_low < 0.95 < c.ci_high < 1.0
    u = capture_from_estimates(Estimate(0.5, 0.4, 0.6), Estimate(0.5, 0.4, 0.6), Estimate(0.52, 0.42, 0.62))
    assert not u.defined and math.isnan(u.value) and "do not differ" in u.reason


def test_recommends_smallest_rank_whose_lower_bound_reaches_target(tmp_path):
    run = load_run(write_metrics(tmp_path, [
        ("base", "m", 1.0, 0.99, 1.01), ("full", "m", 0.0, -0.01, 0.01),
        ("lora-r4", "m", 0.5, 0.49, 0.51),   # capture 0.50
        ("lora-r8", "m", 0.05, 0.04, 0.06),  # capture 0.95, lower bound ≈ 0.93
        ("lora-r16", "m", 0.0, -0.01, 0.01),  # capture 1.00
    ]))
    recs = recommend(run, META, target=0.9)
    (rec,) = recs["s"]
    assert rec.status == "reached" and rec.rank == 8
    assert "r=8" in rec.text and "0.95" in rec.text
    assert recs["overall"][0].rank == 8
    # a stricter target moves the recommendation up
    assert recommend(run, META, target=0.97)["s"][0].rank == 16  # r16: 1.00, lower bound ≈ 0.99


def test_not_reached_is_said_plainly(tmp_path):
    run = load_run(write_metrics(tmp_path, [
        ("base", "m", 1.0, 0.99, 1.01), ("full", "m", 0.0, -0.01, 0.01),
        ("lora-r4", "m", 0.5, 0.49, 0.51), ("lora-r8", "m", 0.2, 0.19, 0.21),  # capture 0.80 at best
    ]))
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.status == "not_reached" and rec.rank is None
    assert rec.text.startswith("No lora rank tried (r=4–8) reaches")
    assert "at r=8" in rec.text


def test_undefined_when_base_equals_full(tmp_path):
    run = load_run(write_metrics(tmp_path, [
        ("base", "m", 0.5, 0.4, 0.6), ("full", "m", 0.52, 0.42, 0.62), ("lora-r4", "m", 0.3, 0.2, 0.4),
    ]))
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.status == "undefined" and rec.rank is None
    assert "base and full do not differ" in rec.text


def test_undefined_metric_is_left_out_and_named(tmp_path):
    meta = {"s": StudyMeta("s", ("m", "flat"), frozenset(), True)}
    run = load_run(write_metrics(tmp_path, [
        ("base", "m", 1.0, 0.99, 1.01), ("full", "m", 0.0, -0.01, 0.01), ("lora-r2", "m", 0.0, -0.01, 0.01),
        ("base", "flat", 0.5, 0.4, 0.6), ("full", "flat", 0.5, 0.4, 0.6), ("lora-r2", "flat", 0.1, 0.0, 0.2),
    ]))
    rec = recommend(run, meta, target=0.9)["s"][0]
    assert rec.rank == 2 and "Left out" in rec.text and "flat" in rec.text


def test_non_monotone_ladder_gets_a_caveat(tmp_path):
    run = load_run(write_metrics(tmp_path, [
        ("base", "m", 1.0, 0.99, 1.01), ("full", "m", 0.0, -0.01, 0.01),
        ("lora-r4", "m", 0.0, -0.01, 0.01), ("lora-r8", "m", 0.5, 0.49, 0.51),
    ]))
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.rank == 4 and "r=8 fall below the target again" in rec.text


def test_point_values_without_intervals(tmp_path):
    run = load_run(write_metrics(tmp_path, [
        ("base", "m", 1.0, "", ""), ("full", "m", 0.0, "", ""),
        ("lora-r4", "m", 0.2, "", ""), ("lora-r8", "m", 0.08, "", ""),
    ]))
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.rank == 8 and "point values only" in rec.text


def test_study_meta_falls_back_when_module_missing_or_broken(monkeypatch):
    m = study_meta("no_such_study_xyz", ["a", "b"])
    assert not m.from_registry and m.headline == ("a", "b") and m.direction("a") is None

    import importlib

    def boom(name, *a, **k):
        raise RuntimeError("broken study module")

    monkeypatch.setattr(importlib, "import_module", boom)
    m = study_meta("another_missing_study", ["x"])
    assert m.headline == ("x",) and not m.from_registry


def test_load_run_errors(tmp_path):
    with pytest.raises(UserError, match="existing run directory"):
        load_run(tmp_path / "nope")
    with pytest.raises(UserError, match="metrics.csv"):
        load_run(tmp_path)
    (tmp_path / "metrics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="missing"):
        load_run(tmp_path)


def test_per_layer_quantities_shapes():
    labels, qs = per_layer_quantities({"layers": [{"layer": 0, "kl": 1.0, "mass": 0.1}, {"layer": 1, "kl": 0.5, "mass": 0.2}]})
    assert labels == ["0", "1"] and qs == {"kl": [1.0, 0.5], "mass": [0.1, 0.2]}
    labels, qs = per_layer_quantities({"layer": [0, 1, 2], "kl_to_final": [3, 2, 1]})
    assert labels == ["0", "1", "2"] and qs == {"kl_to_final": [3.0, 2.0, 1.0]}
    labels, qs = per_layer_quantities({"eval": {"kl_to_final": [1, 2]}, "note": "x"})
    assert qs == {"eval/kl_to_final": [1.0, 2.0]}
    assert per_layer_quantities("garbage") == ([], {})
    assert per_layer_quantities({"a": "b"}) == ([], {})


def test_energy_curves_from_singular_values_and_summary():
    # σ = (3, 4): energy at r=1 is 16/25 (largest first), r=2 is 1
    (curve,) = energy_curves({"singular_values": [3.0, 4.0]})
    assert curve[1] == [1.0, 2.0] and curve[2] == pytest.approx([0.64, 1.0])
    spec = {"modules": [{"name": "l0.q", "energy": {"1": 0.2, "2": 0.6}}, {"name": "l1.q", "energy": {"1": 0.4, "2": 0.8}}],
            "summary": {"by_type": {"q": {"energy": {"1": 0.3, "2": 0.7}}}}}
    curves = energy_curves(spec)
    assert curves[0][0] == "mean over modules" and curves[0][2] == pytest.approx([0.3, 0.7])
    assert [c[0] for c in curves[1:]] == ["q"]
    assert energy_curves({"nothing": 1}) == []
