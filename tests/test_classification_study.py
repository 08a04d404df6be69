"""The classification study end to end on tiny:llama (and once on the embedded model, slow)."""

import json
import logging

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from lorafair.models.tiny import build_tiny
from lorafair.studies.base import STUDIES, EvalContext, VariantInfo
from lorafair.studies.classification import ClassificationStudy
from lorafair.studies.classification.metrics import fairlearn_metrics


def _ctx(model, tok, tmp_path, **cfg):
    return EvalContext(
        model=model, tokenizer=tok, device=torch.device("cpu"), variant=VariantInfo("base", "base", None), seed=0,
        out_dir=tmp_path, config=None, study_config=ClassificationStudy.Config(**cfg), log=logging.getLogger("t"),
        progress=False,
    )


def test_registered_and_headline():
    assert STUDIES.get("classification") is ClassificationStudy
    assert ClassificationStudy.headline == ("accuracy", "accuracy_disparity", "dp_difference", "eo_difference")
    assert {"accuracy_disparity", "dp_difference", "eo_difference"} <= ClassificationStudy.lower_is_better
    assert "accuracy" not in ClassificationStudy.lower_is_better


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
    res = ClassificationStudy().evaluate(_ctx(model, tok, tmp_path, dataset="adult", n_eval=20, n_boot=100, counterfactual=False))
    acc = {(m.metric, m.group): m.value for m in res.metrics}[("accuracy", "")]
    assert 0.0 <= acc <= 1.0
