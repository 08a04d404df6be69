"""The classification study's per-item values and metric roles: every paired statistic recomputes its row
from the items; constant decisions are undefined (rows, items, paired rows), never fair."""

import json
import math

import numpy as np
import pytest

from lorafair.models.tiny import build_tiny
from lorafair.run.paired import load_items, paired_rows, save_items
from lorafair.studies.base import metric_specs
from lorafair.studies.classification import ClassificationStudy
from lorafair.studies.classification.metrics import BY_GROUP, UNDEFINED_CONSTANT, fairlearn_metrics, item_group_rates

from helpers_lf import eval_context


def _ctx(model, tok, out, **cfg):
    return eval_context(ClassificationStudy, model=model, tokenizer=tok, out_dir=out, study_config=cfg)


def _rows(res):
    return {(m.metric, m.group): m for m in res.metrics}


def _b1(items):
    return {k: v[None, :] for k, v in items.columns.items()}


def _same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def test_metric_roles():
    specs = metric_specs(ClassificationStudy)
    assert specs["accuracy"].role == "guard" and specs["accuracy"].direction == "higher"
    for m in ("accuracy_disparity", "dp_difference", "eo_difference"):
        assert specs[m].role == "target" and specs[m].direction == "lower" and specs[m].ideal == 0.0, m
    assert {s.name for s in specs.values() if s.role in ("target", "guard")} == {
        "accuracy", "accuracy_disparity", "dp_difference", "eo_difference"}
    assert all(s.unit == "records" for s in specs.values() if s.stat is not None)


@pytest.mark.parametrize("cfg", [
    dict(dataset="german", n_eval=24, min_group_n=5, threshold="prior", counterfactual=True),
    dict(dataset="compas", protected="race", n_eval=40, min_group_n=8, threshold="prior"),  # small groups left out
])
def test_item_statistics_equal_the_rows(tmp_path, cfg):
    model, tok = build_tiny("llama")
    res = ClassificationStudy().evaluate(_ctx(model, tok, tmp_path / "base", n_boot=100, **cfg))
    items = res.items["records"]
    rows = _rows(res)
    assert not res.info["constant_decisions"] and np.isfinite(rows[("dp_difference", "")].value)
    recs = [json.loads(x) for x in (tmp_path / "base" / "classification_records.jsonl").read_text().splitlines()]
    assert items.ids == [f"{cfg['dataset']}:{r['row']}" for r in recs]
    assert items.columns["y_true"].tolist() == [r["label"] for r in recs]
    assert items.columns["y_pred"].tolist() == [r["decision"] for r in recs]
    kept = set(res.info["group_counts"]) - set(res.info["excluded_groups"])
    assert items.columns["between"].tolist() == [float(r["group"] in kept) for r in recs]
    if cfg["dataset"] == "compas":
        assert res.info["excluded_groups"]  # the case where "between" matters
    for name, spec in metric_specs(ClassificationStudy).items():
        if spec.stat is None:
            continue
        v = float(spec.stat(_b1(items))[0])
        assert _same(v, rows[(name, "")].value), (name, v, rows[(name, "")])
    for g, per in item_group_rates(_b1(items)).items():
        for k in BY_GROUP:
            if (k, g) in rows:
                assert per[k][0] == pytest.approx(rows[(k, g)].value, abs=1e-12), (k, g)
            else:
                assert np.isnan(per[k][0])
    if cfg.get("counterfactual"):
        assert items.columns["flip"].mean() == pytest.approx(rows[("flip_rate", "")].value)
    # the same records, ids and labels for another variant (another model): the paired comparison is aligned
    other, _ = build_tiny("llama", seed=1)
    res2 = ClassificationStudy().evaluate(_ctx(other, tok, tmp_path / "other", n_boot=100, **cfg))
    it2 = res2.items["records"]
    assert it2.ids == items.ids
    assert all(np.array_equal(it2.columns[k], items.columns[k]) for k in items.columns if k not in ("y_pred", "flip"))


@pytest.mark.parametrize("threshold", [1e9, -1e9])  # "no" to everyone, "yes" to everyone
def test_constant_decisions_are_undefined(tmp_path, threshold):
    model, tok = build_tiny("llama")
    res = ClassificationStudy().evaluate(_ctx(model, tok, tmp_path / "v", dataset="german", n_eval=24, n_boot=100,
                                              min_group_n=5, threshold=threshold, counterfactual=True))
    rows = _rows(res)
    items = res.items["records"]
    assert len(set(items.columns["y_pred"].tolist())) == 1 and res.info["constant_decisions"]
    for m in ("dp_difference", "dp_ratio", "eo_difference", "flip_rate"):
        r = rows[(m, "")]
        assert math.isnan(r.value) and r.note == UNDEFINED_CONSTANT and r.ci_low is None and r.ci_high is None, m
    for g in ("Female", "Male"):
        assert rows[("flip_rate", g)].note == UNDEFINED_CONSTANT
        assert rows[("selection_rate", g)].value == float(threshold < 0)  # a group's own rate stays defined
    # accuracy (and the accuracy disparity, which follows the base rates) stay defined
    y = items.columns["y_true"]
    assert rows[("accuracy", "")].value == pytest.approx(np.mean(y == float(threshold < 0)))
    assert rows[("accuracy", "")].note == "" and math.isfinite(rows[("accuracy_disparity", "")].value)
    specs = metric_specs(ClassificationStudy)
    for m in ("dp_difference", "eo_difference", "dp_ratio"):
        assert np.isnan(specs[m].stat(_b1(items))[0]), m
    assert specs["accuracy"].stat(_b1(items))[0] == pytest.approx(rows[("accuracy", "")].value)
    # fairlearn itself would have called this fair
    recs = [json.loads(x) for x in (tmp_path / "v" / "classification_records.jsonl").read_text().splitlines()]
    o, _ = fairlearn_metrics([r["label"] for r in recs], [r["decision"] for r in recs], [r["group"] for r in recs])
    assert o["dp_difference"] == 0.0


def test_paired_rows_from_saved_items_say_undefined_for_a_constant_base(tmp_path):
    model, tok = build_tiny("llama")
    kw = dict(dataset="german", n_eval=24, n_boot=100, min_group_n=5)
    variants = {"base": dict(threshold=1e9), "full": dict(threshold="prior"), "lora-r4": dict(threshold="prior")}
    by_variant = {}
    for name, extra in variants.items():
        m = model if name != "full" else build_tiny("llama", seed=1)[0]
        res = ClassificationStudy().evaluate(_ctx(m, tok, tmp_path / name, **kw, **extra))
        path = save_items(tmp_path / name / "results", "classification", res.items)
        vinfo = {"name": name, "method": name.split("-")[0], "rank": 4 if name.startswith("lora") else None}
        by_variant[name] = (vinfo, load_items(path))
    rows = {(r["variant"], r["metric"]): r for r in
            paired_rows("classification", metric_specs(ClassificationStudy).values(), by_variant, 0, n_boot=200)}
    for m in ("dp_difference", "eo_difference"):
        r = rows[("lora-r4", f"delta_{m}")]
        assert r["value"] is None and r["note"] == "undefined: the metric is undefined for base", m
        c = rows[("lora-r4", f"capture_{m}")]
        assert c["value"] is None and c["note"].startswith("undefined"), m
    # accuracy is a guard: a defined difference, and no capture row
    assert rows[("lora-r4", "delta_accuracy")]["value"] is not None
    assert ("lora-r4", "capture_accuracy") not in rows
