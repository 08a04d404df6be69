"""Capture ratios, rank recommendation, seed pooling and tolerant artifact readers of the report."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from lorafair.errors import UserError
from lorafair.report.artifacts import energy_curves, per_layer_quantities
import numpy as np

from lorafair.report.load import Estimate, load_run, parse_variant, pool_seeds, sort_variants
from lorafair.report.recommend import capture_table, recommend
from lorafair.report.study_meta import StudyMeta, study_meta

COLS = ["variant", "method", "rank", "seed", "study", "metric", "group", "value", "ci_low", "ci_high", "n", "note"]


def write_metrics(root: Path, rows: list[tuple]) -> Path:
    """rows: (variant, metric, value, lo, hi[, note]) for study "s", seed 0, n 100."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLS)
        for variant, metric, v, lo, hi, *note in rows:
            method, rank = parse_variant(variant)
            w.writerow([variant, method, rank if rank is not None else "", 0, "s", metric, "", v, lo, hi, 100,
                        note[0] if note else ""])
    return root


ROLES = {"m": {"role": "target", "direction": "lower"}, "g": {"role": "guard", "direction": "lower"},
         "d": {"role": "diagnostic", "direction": "lower"}, "flat": {"role": "target", "direction": "lower"}}
META = {"s": StudyMeta("s", ("m",), roles=ROLES)}


def cap(variant, v, lo, hi, metric="m"):
    return (variant, f"capture_{metric}", v, lo, hi)


def test_parse_and_sort_variants():
    assert parse_variant("lora-r8") == ("lora", 8)
    assert parse_variant("rslora-r128") == ("rslora", 128)
    assert parse_variant("base") == ("base", None)
    assert sort_variants(["full", "lora-r16", "dora-r2", "lora-r2", "base"]) == \
        ["base", "lora-r2", "lora-r16", "dora-r2", "full"]


def test_pool_seeds_by_hand():
    # values 1 and 2: s² = 0.5, s²/k = 0.25 (the within-seed 2·se²/4 is not added); t_{0.975, 1} = 12.7062
    e = pool_seeds([Estimate(1.0, 0.8, 1.2, 100), Estimate(2.0, 1.8, 2.2, 100)])
    half = 12.706204736174707 * math.sqrt(0.25)
    assert e.value == pytest.approx(1.5)
    assert e.ci_low == pytest.approx(1.5 - half) and e.ci_high == pytest.approx(1.5 + half)
    assert e.n == 200 and e.seeds == 2
    # identical values: the between-seed variance is 0 and the within-seed part is used
    e = pool_seeds([Estimate(1.0, 0.8, 1.2)] * 3)
    se = 0.4 / (2 * 1.959963984540054)
    assert e.ci_high - 1.0 == pytest.approx(4.302652729911275 * math.sqrt(3 * se**2 / 9))
    one = Estimate(0.3, 0.2, 0.4, 10)
    assert pool_seeds([one]) is one


@pytest.mark.parametrize("seed_sd", [0.0, 0.1])
def test_pool_seeds_covers_the_mean_95_percent(seed_sd):
    """Coverage of the pooled interval over simulated runs: k = 5 seeds, each seed's value = true + seed
    effect + within-seed noise (se 0.05, its 95% interval given). Counting the within-seed variance twice
    (the old formula) covers ~99% when there is no seed effect."""
    rng = np.random.default_rng(0)
    se, k, hits, sims = 0.05, 5, 0, 3000
    for _ in range(sims):
        vals = rng.normal(0, seed_sd, k) + rng.normal(0, se, k)
        e = pool_seeds([Estimate(v, v - 1.96 * se, v + 1.96 * se) for v in vals])
        hits += e.ci_low <= 0 <= e.ci_high
    assert 0.93 <= hits / sims <= 0.975


def test_capture_rows_read_and_smallest_rank_within_band(tmp_path):
    run = load_run(write_metrics(tmp_path, [
        cap("lora-r4", 0.5, 0.45, 0.55), cap("lora-r8", 0.95, 0.92, 0.98), cap("lora-r16", 1.0, 0.98, 1.02),
    ]))
    recs = recommend(run, META, target=0.9)
    (rec,) = recs["s"]
    assert rec.status == "reached" and rec.rank == 8
    assert "r=8" in rec.text and "0.95 [0.92, 0.98]" in rec.text and "[0.9, 1.1]" in rec.text
    assert recs["overall"][0].rank == 8
    assert recommend(run, META, target=0.97)["s"][0].rank == 16  # r8's interval starts below 0.97


def test_overshoot_is_not_reached(tmp_path):
    # r8 moved 4x as far as full: not "learned the same"
    run = load_run(write_metrics(tmp_path, [cap("lora-r4", 0.5, 0.4, 0.6), cap("lora-r8", 4.0, 3.5, 4.5)]))
    (c,) = capture_table(run, META["s"], "lora")
    assert c.state(8, 0.9) == "overshoots" and c.state(4, 0.9) == "short"
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.status == "not_reached" and rec.rank is None
    assert "overshoots at r=8" in rec.text
    # an interval spanning the whole band is uncertain, not reached
    run = load_run(write_metrics(tmp_path / "u", [cap("lora-r4", 1.0, 0.5, 1.5)]))
    assert capture_table(run, META["s"], "lora")[0].state(4, 0.9) == "uncertain"


def test_undefined_capture_is_named(tmp_path):
    why = "undefined: base and full do not differ significantly: paired 95% interval ... contains 0"
    run = load_run(write_metrics(tmp_path, [("lora-r4", "capture_m", "", "", "", why)]))
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.status == "undefined" and rec.rank is None
    assert "base and full do not differ" in rec.text


def test_undefined_metric_is_left_out_and_named(tmp_path):
    meta = {"s": StudyMeta("s", ("m", "flat"), roles=ROLES)}
    run = load_run(write_metrics(tmp_path, [
        cap("lora-r2", 1.0, 0.97, 1.03),
        ("lora-r2", "capture_flat", "", "", "", "undefined: base and full have the same value"),
    ]))
    rec = recommend(run, meta, target=0.9)["s"][0]
    assert rec.rank == 2 and "Left out" in rec.text and "flat: base and full have the same value" in rec.text


def test_only_targets_decide_and_guards_are_checked(tmp_path):
    rows = [cap("lora-r4", 1.0, 0.95, 1.05),
            cap("lora-r4", -3.0, -4.0, -2.0, metric="d"),      # a diagnostic: never a capture target
            cap("lora-r4", -3.0, -4.0, -2.0, metric="g"),      # a guard: never a capture target
            ("lora-r4", "delta_g", 2.0, 1.0, 3.0), ("full", "delta_g", 1.5, 0.5, 2.5)]
    run = load_run(write_metrics(tmp_path, rows))
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.status == "reached" and rec.rank == 4
    assert [g.metric for g in rec.guards_broken] == ["g"]
    assert "breaks guard(s): g changes by +2 [+1, +3] from base" in rec.text
    # when no rank reaches, broken guards are still named, with full's change
    run = load_run(write_metrics(tmp_path / "nr", [cap("lora-r4", 0.5, 0.4, 0.6)] + rows[3:]))
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.status == "not_reached" and "Guards broken: g at r=4 (full: +1.5 [+0.5, +2.5])" in rec.text
    # a guard that got better (lower) is not broken
    run = load_run(write_metrics(tmp_path / "ok", rows[:3] + [("lora-r4", "delta_g", -2.0, -3.0, -1.0)]))
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.guards_broken == [] and "Guards hold" in rec.text


def test_non_monotone_ladder_gets_a_caveat(tmp_path):
    run = load_run(write_metrics(tmp_path, [cap("lora-r4", 1.0, 0.95, 1.05), cap("lora-r8", 0.5, 0.45, 0.55)]))
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.rank == 4 and "r=8: m short" in rec.text


def test_point_values_without_intervals(tmp_path):
    run = load_run(write_metrics(tmp_path, [cap("lora-r4", 0.8, "", ""), cap("lora-r8", 0.92, "", "")]))
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.rank == 8 and "point values only" in rec.text


def test_no_capture_rows_says_why(tmp_path):
    run = load_run(write_metrics(tmp_path, [("base", "m", 1.0, 0.9, 1.1), ("lora-r4", "m", 0.5, 0.4, 0.6),
                                            ("full", "m", 0.0, -0.1, 0.1)]))
    rec = recommend(run, META, target=0.9)["s"][0]
    assert rec.status == "no_ranks" and "no paired capture rows" in rec.text.replace("has paired", "has no paired") \
        or "paired capture rows" in rec.text


def test_study_meta_comes_from_the_run_directory_with_documented_defaults():
    # nothing declared (no metric_roles.json entry): every metric but the derived rows, roles and directions unknown
    m = study_meta("no_such_study_xyz", ["a", "capture_a", "delta_a", "b"])
    assert not m.declared and m.headline == ("a", "b") and m.direction("a") is None and m.role("a") == "diagnostic"
    assert m.heading == "no_such_study_xyz" and m.description == ""
    roles = {"b": {"role": "target", "direction": "lower", "ideal": 0, "unit": "pairs", "doc": "b's doc"},
             "a": {"role": "guard", "direction": "higher"}, "z": {"role": "target", "direction": "none"}}
    # declared metrics but no headline (an older run): the declared metrics it measured, in declared order
    m = study_meta("s", ["a", "b", "c"], roles)
    assert m.declared and not m.headline_declared and m.headline == ("b", "a")
    # a declared headline: in its order, restricted to the measured metrics; title and description from the run
    m = study_meta("s", ["a", "b", "c"], roles, {"headline": ["c", "zz", "a"], "title": "S!", "description": "one line"})
    assert m.headline_declared and m.headline == ("c", "a") and m.heading == "S!" and m.description == "one line"
    assert (m.direction("b"), m.ideal("b"), m.unit("b"), m.metric_doc("b")) == ("lower", 0.0, "pairs", "b's doc")
    assert m.direction("a") == "higher" and m.direction("z") is None and m.direction("c") is None
    assert m.with_role("target") == ["b", "z"] and m.with_role("guard") == ["a"] and m.role("c") == "diagnostic"
    # none of the declared headline measured: every metric, as for an undeclared study
    assert study_meta("s", ["a", "capture_b"], roles, {"headline": ["zz"]}).headline == ("a",)


def test_metric_roles_study_entries_are_read_and_malformed_parts_named(tmp_path):
    import json

    write_metrics(tmp_path, [("base", "m", 1.0, 0.9, 1.1), ("base", "d", 2.0, 1.9, 2.1)])
    (tmp_path / "metric_roles.json").write_text(json.dumps({
        "s": {"_study": {"title": "Study S", "description": 7, "headline": ["d", "m"]}, "m": ROLES["m"], "bad": 3},
        "t": [1, 2]}))
    run = load_run(tmp_path)
    assert run.study_decl == {"s": {"title": "Study S", "headline": ["d", "m"]}}
    assert run.roles == {"s": {"m": ROLES["m"]}}  # "_study" is not a metric
    assert any("s/_study/description is not a string" in n for n in run.notes)
    assert any("s/bad is not an object" in n for n in run.notes) and any("study t is not an object" in n
                                                                           for n in run.notes)
    (tmp_path / "metric_roles.json").write_text(json.dumps({"s": {"_study": {"headline": "m"}}}))
    run = load_run(tmp_path)
    assert run.study_decl == {"s": {}} and any("headline is not a list" in n for n in run.notes)


def test_report_reads_no_study_module(tmp_path):
    """The report's metadata comes from the run directory: building one imports no study and not the runner."""
    import subprocess
    import sys

    import report_synth

    root = report_synth.make_run(tmp_path / "r", ranks=(1, 4), studies=("toxicity", "shift", "decisions"))
    code = ("import sys; from lorafair.report import write_report; write_report(sys.argv[1]); "
            "bad = sorted(m for m in sys.modules if m.startswith('lorafair.studies') or m == 'lorafair.run.runner'); "
            "print(bad); sys.exit(1 if bad else 0)")
    p = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (root / "report.md").is_file()


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
