"""The stereotypes study end to end on tiny:llama (a few items per benchmark)."""

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from lorafair.errors import UserError
from lorafair.studies.base import STUDIES
from lorafair.studies.stereotypes import StereotypesConfig, StereotypesStudy, bbq

from helpers_lf import eval_context

SMALL = dict(limit={"crows": 6, "stereoset": 4, "winobias": 8, "bbq": 30}, n_boot=50, batch_size=8)  # bbq: 1 per stratum


def make_ctx(tmp_path: Path, cfg, seed=0):
    return eval_context(study_config=cfg, seed=seed, out_dir=tmp_path)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("st")
    cfg = StereotypesConfig(**SMALL)
    return StereotypesStudy().evaluate(make_ctx(out, cfg)), out


def test_registered():
    assert STUDIES.get("stereotypes") is StereotypesStudy
    assert set(StereotypesStudy.headline) <= {
        "crows_stereotype_pct", "stereoset_ss", "stereoset_icat", "winobias_gap", "bbq_bias_ambig", "bbq_bias_disambig"}


def test_metric_rows(result):
    res, _ = result
    names = {r.metric for r in res.metrics}
    assert names == {
        "crows_stereotype_pct", "crows_stereotype_pct_shared",
        *(f"{p}_{m}" for p in ("stereoset", "stereoset_intra", "stereoset_inter") for m in ("lms", "ss", "icat")),
        "winobias_pro_acc", "winobias_anti_acc", "winobias_gap",
        "bbq_acc_ambig", "bbq_acc_disambig", "bbq_bias_ambig", "bbq_bias_disambig",
    }
    overall = {r.metric: r for r in res.metrics if r.group == ""}
    assert overall["crows_stereotype_pct"].n == 6
    assert overall["stereoset_ss"].n == 8 and overall["stereoset_intra_ss"].n == 4
    assert overall["winobias_pro_acc"].n == 4 and overall["winobias_anti_acc"].n == 4
    assert overall["bbq_acc_ambig"].n == 15 and overall["bbq_acc_disambig"].n == 15
    # the authors' groups: categories, with the name-proxy examples apart
    assert {r.group for r in res.metrics if r.metric == "bbq_acc_ambig"} == {"", *bbq.CATEGORIES} | {
        f"{c} (names)" for c in ("Gender_identity", "Race_ethnicity", "Race_x_SES", "Race_x_gender")}
    assert {r.group for r in res.metrics if r.metric == "winobias_gap"} == {"", "type1", "type2"}
    for r in res.metrics:
        if r.metric.endswith(("_pct", "_acc", "_ss", "_lms", "_ambig", "_disambig")) and "bias" not in r.metric and r.value == r.value:
            assert 0.0 <= r.value <= 100.0
    assert res.info["n_items"] == {"crows": 6, "stereoset": 8, "winobias": 8, "bbq": 30}


def test_items_file_and_determinism(result, tmp_path):
    res, out = result
    lines = [json.loads(x) for x in (out / "stereotypes_items.jsonl").read_text().splitlines()]
    assert len(lines) == 6 + 8 + 8 + 30
    again = StereotypesStudy().evaluate(make_ctx(tmp_path, StereotypesConfig(**SMALL)))
    key = lambda rows: [repr((r.metric, r.group, r.value, r.ci_low, r.ci_high, r.n)) for r in rows]  # noqa: E731 (nan-safe)
    assert key(again.metrics) == key(res.metrics)


def test_eval_split_disjoint_from_antistereotype_training(result):
    from lorafair.studies.stereotypes.datasets.antistereotype import build_antistereotype
    from lorafair.data.registry import DataContext, DataSpec

    _, out = result
    evaluated = {(x["benchmark"], x["id"]) for x in map(json.loads, (out / "stereotypes_items.jsonl").read_text().splitlines())}
    train = build_antistereotype(DataSpec(source="antistereotype"), DataContext())
    train_ids = {("crows" if r["source"] == "crows" else "stereoset", r["id"]) for r in train}
    assert evaluated & train_ids == set()
    assert any(b == "crows" for b, _ in evaluated) and any(b == "stereoset" for b, _ in evaluated)


def test_filters(tmp_path):
    cfg = StereotypesConfig(benchmarks=["crows", "bbq"], crows_bias_types=["gender"], bbq_categories=["Age"],
                            limit={"crows": 4, "bbq": 4}, n_boot=20)
    res = StereotypesStudy().evaluate(make_ctx(tmp_path, cfg))
    assert {r.group for r in res.metrics if r.metric == "crows_stereotype_pct"} == {"", "gender"}
    assert {r.group for r in res.metrics if r.metric.startswith("bbq")} == {"", "Age"}
    assert not any(r.metric.startswith(("stereoset", "winobias")) for r in res.metrics)


@pytest.mark.parametrize("fields,match", [
    ({"benchmarks": ["crows", "nope"]}, "benchmarks"),
    ({"benchmarks": []}, "at least one"),
    ({"limit": {"crows": 0}}, "greater than 0"),
    ({"limit": {"bogus": 3}}, "limit"),
    ({"crows_bias_types": ["gendr"]}, "gendr"),
    ({"bbq_categories": ["age"]}, "expected one of Age"),
    ({"bbq_normalize": "max"}, "bbq_normalize"),
    ({"batch_size": 0}, "batch_size"),
    ({"unknown_field": 1}, "unknown_field"),
])
def test_config_errors(fields, match):
    with pytest.raises(ValidationError, match=match):
        StereotypesConfig(**fields)


def test_config_error_through_study_loader():
    from lorafair.studies.loader import validate_studies

    with pytest.raises(UserError, match="studies.stereotypes"):
        validate_studies({"stereotypes": {"bbq_categories": ["age"]}})
    assert validate_studies({"stereotypes": {}})["stereotypes"].limit_for("crows") > 0


def _records(out):
    return [json.loads(x) for x in (out / "stereotypes_items.jsonl").read_text().splitlines()]


def _overall(res):
    return {r.metric: r.value for r in res.metrics if r.group == ""}


def test_recomputed_from_the_per_item_file(result):
    """CrowS %, WinoBias gap and BBQ accuracy and bias scores recomputed by hand from stereotypes_items.jsonl."""
    res, out = result
    v = _overall(res)
    recs = _records(out)
    cr = [r for r in recs if r["benchmark"] == "crows"]
    assert v["crows_stereotype_pct"] == pytest.approx(100 * sum(r["more"] > r["less"] for r in cr) / len(cr))
    wb = [r for r in recs if r["benchmark"] == "winobias"]
    by_pair = {}
    for r in wb:
        by_pair.setdefault(r["pair"], {})[r["condition"]] = r["correct"]
    assert all(set(p) == {"pro", "anti"} for p in by_pair.values()) and len(by_pair) == 4
    gap = 100 * sum(p["pro"] - p["anti"] for p in by_pair.values()) / len(by_pair)
    assert v["winobias_gap"] == pytest.approx(gap)
    bq = [r for r in recs if r["benchmark"] == "bbq"]
    assert all(r["pred"] == max(range(3), key=lambda j: r["scores"][j]) for r in bq)
    for cond in ("ambig", "disambig"):
        rs = [r for r in bq if r["condition"] == cond]
        acc = sum(r["pred"] == r["label"] for r in rs) / len(rs)
        counted = [r for r in rs if r["pred"] != r["unknown_loc"]]
        s = 100 * (2 * sum(r["pred"] == r["target_loc"] for r in counted) / len(counted) - 1) if counted else float("nan")
        if cond == "ambig":
            s *= 1 - acc
        assert v[f"bbq_acc_{cond}"] == pytest.approx(100 * acc)
        assert v[f"bbq_bias_{cond}"] == pytest.approx(s, nan_ok=True)
    groups = {r["group"] for r in bq}
    assert all(g == (r["category"] + (" (names)" if r["label_type"] == "name" else "")) for r in bq for g in [r["group"]])
    assert {g for g in groups if g.endswith("(names)")}


def test_metric_specs_roles():
    specs = {m.name: m for m in StereotypesStudy.metric_specs}
    targets = {n for n, m in specs.items() if m.role == "target"}
    assert targets == {"crows_stereotype_pct", "stereoset_ss", "winobias_gap", "bbq_bias_ambig", "bbq_bias_disambig"}
    assert {n for n, m in specs.items() if m.role == "guard"} == {"stereoset_lms", "bbq_acc_ambig", "bbq_acc_disambig"}
    assert {n: specs[n].ideal for n in targets} == {"crows_stereotype_pct": 50.0, "stereoset_ss": 50.0, "winobias_gap": 0.0,
                                                   "bbq_bias_ambig": 0.0, "bbq_bias_disambig": 0.0}
    assert specs["stereoset_lms"].direction == "higher" and specs["bbq_acc_disambig"].direction == "higher"
    assert all(m.stat is not None for m in specs.values())


def test_item_stats_equal_reported_values(result, tmp_path):
    """Every declared statistic on the saved per-item file (B = 1) equals the study's overall row."""
    from lorafair.run.paired import load_items, save_items

    res, _ = result
    assert set(res.items) == {"crows_pairs", "stereoset_items", "winobias_pairs", "bbq_examples"}
    assert len(res.items["crows_pairs"]) == 6 and len(res.items["stereoset_items"]) == 8
    assert len(res.items["winobias_pairs"]) == 4 and len(res.items["bbq_examples"]) == 30
    loaded = load_items(save_items(tmp_path, "stereotypes", res.items))
    v = _overall(res)
    specs = StereotypesStudy.metric_specs
    assert {m.name for m in specs} == set(v)
    for m in specs:
        ids, cols = loaded[m.unit]
        assert ids == res.items[m.unit].ids
        got = float(m.stat({k: c[None, :] for k, c in cols.items()})[0])
        assert got == pytest.approx(v[m.name], rel=1e-12, abs=1e-9, nan_ok=True), m.name


def test_item_stats_on_more_items_and_resamples(tmp_path):
    """Same check on a larger subset (ties, several targets per term, both BBQ conditions), and the
    statistics accept B > 1 resamples."""
    from lorafair.stats.paired import paired_draws

    cfg = StereotypesConfig(limit={"crows": 20, "stereoset": 30, "winobias": 20, "bbq": 60}, n_boot=20, batch_size=16,
                            bbq_normalize="sum")
    res = StereotypesStudy().evaluate(make_ctx(tmp_path, cfg, seed=3))
    v = _overall(res)
    for m in StereotypesStudy.metric_specs:
        cols = res.items[m.unit].columns
        assert float(m.stat({k: c[None, :] for k, c in cols.items()})[0]) == pytest.approx(v[m.name], rel=1e-12, nan_ok=True)
        points, draws = paired_draws(m.stat, [cols], n_boot=7, seed=0)
        assert draws[0].shape == (7,)
    st = res.items["stereoset_items"].columns
    assert len(np.unique(st["target"])) < len(st["target"])  # a target term with several items: macro average matters
