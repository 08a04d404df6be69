"""The stereotypes study end to end on tiny:llama (a few items per benchmark)."""

import json
import logging
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from lorafair.errors import UserError
from lorafair.models.tiny import build_tiny
from lorafair.studies.base import STUDIES, EvalContext, VariantInfo
from lorafair.studies.stereotypes import StereotypesConfig, StereotypesStudy

SMALL = dict(limit={"crows": 6, "stereoset": 4, "winobias": 8, "bbq": 22}, n_boot=50, batch_size=8)


def make_ctx(tmp_path: Path, cfg, seed=0):
    model, tok = build_tiny("llama")
    return EvalContext(model=model, tokenizer=tok, device=torch.device("cpu"), variant=VariantInfo("base", "base", None),
                       seed=seed, out_dir=tmp_path, config=None, study_config=cfg, log=logging.getLogger("test"), progress=False)


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
    assert overall["bbq_acc_ambig"].n == 11 and overall["bbq_acc_disambig"].n == 11
    assert {r.group for r in res.metrics if r.metric == "bbq_acc_ambig"} >= {"", "Age", "SES"}
    assert {r.group for r in res.metrics if r.metric == "winobias_gap"} == {"", "type1", "type2"}
    for r in res.metrics:
        if r.metric.endswith(("_pct", "_acc", "_ss", "_lms", "_ambig", "_disambig")) and "bias" not in r.metric and r.value == r.value:
            assert 0.0 <= r.value <= 100.0
    assert res.info["n_items"] == {"crows": 6, "stereoset": 8, "winobias": 8, "bbq": 22}


def test_items_file_and_determinism(result, tmp_path):
    res, out = result
    lines = [json.loads(x) for x in (out / "stereotypes_items.jsonl").read_text().splitlines()]
    assert len(lines) == 6 + 8 + 8 + 22
    again = StereotypesStudy().evaluate(make_ctx(tmp_path, StereotypesConfig(**SMALL)))
    key = lambda rows: [repr((r.metric, r.group, r.value, r.ci_low, r.ci_high, r.n)) for r in rows]  # noqa: E731 (nan-safe)
    assert key(again.metrics) == key(res.metrics)


def test_eval_split_disjoint_from_antistereotype_training(result):
    from lorafair.data.debias_antistereotype import build_antistereotype
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
