"""The classification study end to end on tiny:llama (and once on the embedded model, slow)."""

import json

import numpy as np
import pytest
from pydantic import ValidationError

from lorafair.models.tiny import build_tiny
from lorafair.studies.base import STUDIES, metric_specs
from lorafair.studies.classification import ClassificationStudy
from lorafair.studies.classification.metrics import fairlearn_metrics

from helpers_lf import eval_context


def _lower(cls) -> set[str]:
    """The metrics a study declares lower-is-better (its MetricSpec directions)."""
    return {m for m, s in metric_specs(cls).items() if s.direction == "lower"}


def _ctx(model, tok, tmp_path, **cfg):
    return eval_context(ClassificationStudy, model=model, tokenizer=tok, out_dir=tmp_path, study_config=cfg)


def test_registered_and_headline():
    assert STUDIES.get("classification") is ClassificationStudy
    assert ClassificationStudy.headline == ("accuracy", "accuracy_disparity", "dp_difference", "eo_difference")
    assert {"accuracy_disparity", "dp_difference", "eo_difference"} <= _lower(ClassificationStudy)
    assert "accuracy" not in _lower(ClassificationStudy)


def test_config_errors():
    with pytest.raises(ValidationError, match="protected='race' is not available for dataset 'german'"):
        ClassificationStudy.Config(dataset="german", protected="race")
    with pytest.raises(ValidationError):
        ClassificationStudy.Config(dataset="mnist")
    with pytest.raises(ValidationError):
        ClassificationStudy.Config(threshold="median")
    with pytest.raises(ValidationError):
        ClassificationStudy.Config(n_eval=1)
    with pytest.raises(ValidationError):
        ClassificationStudy.Config(colour=1)
    assert ClassificationStudy.Config(threshold="prior").threshold == "prior"


def test_evaluate_on_tiny_model(tmp_path):
    model, tok = build_tiny("llama")
    res = ClassificationStudy().evaluate(_ctx(model, tok, tmp_path, dataset="german", n_eval=24, n_boot=200, min_group_n=5, threshold="prior", counterfactual=True))
    by = {(m.metric, m.group): m for m in res.metrics}
    for k in ("accuracy", "balanced_accuracy", "fpr", "fnr", "accuracy_disparity", "dp_difference", "dp_ratio", "eo_difference", "flip_rate"):
        assert (k, "") in by, k
    assert ("accuracy", "Female") in by and ("accuracy", "Male") in by and ("flip_rate", "Male") in by
    lines = [json.loads(x) for x in (tmp_path / "classification_records.jsonl").read_text().splitlines()]
    assert len(lines) == 24 and res.info["n"] == 24
    y = np.array([r["label"] for r in lines])
    d = np.array([r["decision"] for r in lines])
    g = np.array([r["group"] for r in lines])
    overall, _ = fairlearn_metrics(y, d, g)
    assert by[("accuracy", "")].value == pytest.approx(overall["accuracy"])
    assert by[("eo_difference", "")].value == pytest.approx(overall["eo_difference"])
    # the flip rate agrees with the saved counterfactual decisions
    flips = [np.mean([v != r["decision"] for v in r["counterfactual"].values()]) for r in lines]
    assert by[("flip_rate", "")].value == pytest.approx(np.mean(flips))
    assert all(set(r["counterfactual"]) == {"Female", "Male"} - {r["group"]} for r in lines)
    # prior threshold: the share of yes equals the training positive rate (up to ties / rounding)
    assert d.mean() == pytest.approx(res.info["train_positive_rate"], abs=1 / 24 + 1e-9)
    # deterministic: a second evaluation gives the same numbers
    again = ClassificationStudy().evaluate(_ctx(model, tok, tmp_path, dataset="german", n_eval=24, n_boot=200, min_group_n=5, threshold="prior", counterfactual=True))
    assert [(m.metric, m.group, m.value, m.ci_low) for m in again.metrics] == [(m.metric, m.group, m.value, m.ci_low) for m in res.metrics]


def test_omit_protected_has_no_flip_rate(tmp_path):
    model, tok = build_tiny("llama")
    res = ClassificationStudy().evaluate(_ctx(model, tok, tmp_path, dataset="compas", protected="race", include_protected=False, n_eval=12, n_boot=100))
    assert "flip_rate" not in {m.metric for m in res.metrics}
    assert "Race:" not in res.info["example_prompt"]
    # small groups are left out of between-group metrics and listed
    assert res.info["excluded_groups"] == sorted(g for g, c in res.info["group_counts"].items() if c < 20)


@pytest.mark.slow
def test_embedded_model_adult(tmp_path):
    from lorafair.models.sources import load_model

    model, tok = load_model("embedded:smollm2-135m-instruct")
    assert len(tok(" yes", add_special_tokens=False)["input_ids"]) == 1  # the single-token fast path
    # threshold 0: the zero-shot model said "no" to all 40 records when this test was written (the undefined
    # branch below); the prior threshold makes the share of "yes" the training positive rate (decisions vary)
    for threshold in (0.0, "prior"):
        out = tmp_path / str(threshold)
        out.mkdir()
        res = ClassificationStudy().evaluate(_ctx(model, tok, out, dataset="adult", n_eval=40, n_boot=100,
                                                  min_group_n=5, counterfactual=False, threshold=threshold))
        if threshold == "prior":
            assert not res.info["constant_decisions"]
        _check_rows_from_items(res, out)


def _check_rows_from_items(res, tmp_path):
    from lorafair.run.paired import load_items, save_items
    from lorafair.studies.base import metric_specs
    from lorafair.studies.classification.metrics import BY_GROUP, UNDEFINED_CONSTANT

    rows = {(m.metric, m.group): m for m in res.metrics}
    # recompute from the per-item file what the rows say
    ids, cols = load_items(save_items(tmp_path / "results", "classification", res.items))["records"]
    recs = [json.loads(x) for x in (tmp_path / "classification_records.jsonl").read_text().splitlines()]
    assert ids == [f"adult:{r['row']}" for r in recs] and len(ids) == 40
    y, d = cols["y_true"].astype(int), cols["y_pred"].astype(int)
    assert d.tolist() == [r["decision"] for r in recs] and y.tolist() == [r["label"] for r in recs]
    g = np.array([r["group"] for r in recs])
    assert sorted(set(g)) == ["Female", "Male"] and res.info["excluded_groups"] == []
    assert rows[("accuracy", "")].value == pytest.approx(np.mean(y == d))
    for grp in ("Female", "Male"):
        m = g == grp
        assert cols[f"g:{grp}"].tolist() == m.astype(float).tolist()
        assert rows[("accuracy", grp)].value == pytest.approx(np.mean(y[m] == d[m]))
        assert rows[("selection_rate", grp)].value == pytest.approx(np.mean(d[m]))
        if (m & (y == 0)).any():
            assert rows[("fpr", grp)].value == pytest.approx(np.mean(d[m & (y == 0)]))
        assert {k for k in BY_GROUP if (k, grp) in rows} >= {"accuracy", "selection_rate"}
    sel = {grp: np.mean(d[g == grp]) for grp in ("Female", "Male")}
    acc = {grp: np.mean(y[g == grp] == d[g == grp]) for grp in ("Female", "Male")}
    assert rows[("accuracy_disparity", "")].value == pytest.approx(abs(acc["Female"] - acc["Male"]))
    b1 = {k: v[None, :] for k, v in cols.items()}
    specs = metric_specs(ClassificationStudy)
    if len(set(d.tolist())) > 1:  # decisions vary: DP difference is the gap of the selection rates
        assert rows[("dp_difference", "")].value == pytest.approx(abs(sel["Female"] - sel["Male"]))
        assert specs["dp_difference"].stat(b1)[0] == pytest.approx(rows[("dp_difference", "")].value)
    else:  # the zero-shot model answers the same to everyone: the rows must say so, not report parity
        for k in ("dp_difference", "dp_ratio", "eo_difference"):
            assert np.isnan(rows[(k, "")].value) and rows[(k, "")].note == UNDEFINED_CONSTANT, k
            assert np.isnan(specs[k].stat(b1)[0])
    for k in ("accuracy", "accuracy_disparity", "eo_difference"):
        v = specs[k].stat(b1)[0]
        assert (np.isnan(v) and np.isnan(rows[(k, "")].value)) or v == pytest.approx(rows[(k, "")].value), k
