"""The decisions study end to end on tiny:llama, its reference rows, and the lending-policy dataset."""

from types import SimpleNamespace

import numpy as np
import pytest

from lorafair.data.registry import DATASETS, DataContext, DataSpec
from lorafair.errors import UserError
from lorafair.atomic import read_json
from lorafair.studies.base import STUDIES, metric_specs
from lorafair.studies.decisions import DecisionsStudy
from lorafair.studies.decisions.policies import build_policy
from lorafair.studies.decisions.simulator import SimConfig

from helpers_lf import eval_context


def _lower(cls) -> set[str]:
    """The metrics a study declares lower-is-better (its MetricSpec directions)."""
    return {m for m, s in metric_specs(cls).items() if s.direction == "lower"}


def _ctx(tmp_path, cfg, seed=0, folder="base-s0"):
    return eval_context(study_config=cfg, seed=seed, out_dir=tmp_path / folder)


def test_registered_with_headline():
    assert STUDIES.get("decisions") is DecisionsStudy
    assert DecisionsStudy.headline == ("approval_gap", "tpr_gap", "final_score_gap", "profit")
    assert {"approval_gap", "tpr_gap", "final_score_gap"} <= _lower(DecisionsStudy)
    assert "profit" not in _lower(DecisionsStudy)


def test_evaluate_on_tiny_model(tmp_path):
    cfg = DecisionsStudy.Config(episodes=3, rounds=2, history=1, n_boot=100)
    res = DecisionsStudy().evaluate(_ctx(tmp_path, cfg))
    names = {(r.metric, r.group) for r in res.metrics}
    for m in DecisionsStudy.headline + ("flip_rate", "agreement", "fpr_gap"):
        assert (m, "") in names
    assert ("score_change", "A") in names and ("tpr", "B") in names
    tr = read_json(tmp_path / "base-s0" / "decisions_trajectory.json")
    assert tr["round"] == [1, 2] and set(tr["mean_score"]) == {"A", "B"} and len(tr["approval_gap"]) == 2
    assert res.info["episodes"] == 3 and res.info["reference_thresholds"] == {"A": 691, "B": 646}
    again = DecisionsStudy().evaluate(_ctx(tmp_path, cfg, folder="again"))  # a pure function of (config, seed, model)
    np.testing.assert_allclose([r.value for r in again.metrics], [r.value for r in res.metrics], equal_nan=True)


def test_finalize_writes_reference_rows(tmp_path):
    cfg = DecisionsStudy.Config(episodes=4, rounds=3, n_boot=100, reference_policies=["max_profit", "equal_opportunity"])
    config = SimpleNamespace(studies={"decisions": cfg}, seeds=[0, 1])
    rows = DecisionsStudy.finalize(tmp_path, config, [])
    assert {r["variant"] for r in rows} == {"policy:max_profit", "policy:equal_opportunity"}
    assert {r["seed"] for r in rows} == {0, 1} and all(r["method"] == "policy" and r["study"] == "decisions" for r in rows)
    agree = [r["value"] for r in rows if r["variant"] == "policy:equal_opportunity" and r["metric"] == "agreement"]
    assert agree == [1.0, 1.0]  # the reference policy agrees with itself
    saved = read_json(tmp_path / "decisions_reference.json")
    assert saved["thresholds"]["max_profit"] == {"A": 670, "B": 670}
    assert saved["trajectories"]["max_profit"]["0"]["round"] == [1, 2, 3]


def test_bad_study_config():
    with pytest.raises(Exception, match="reference_policy"):
        DecisionsStudy.Config(reference_policy="fairest")
    with pytest.raises(Exception, match="decision"):
        DecisionsStudy.Config(decision="greedy")


def _build(options, seed=0):
    return DATASETS.get("lending-policy")(DataSpec(source="lending-policy", options=options),
                                          DataContext(seed=seed, field_name="data.train"))


def test_lending_policy_dataset_follows_the_policy():
    recs = _build({"policy": "biased", "n": 25, "history": 2, "rounds": 5})
    assert len(recs) == 25
    th = build_policy("biased", SimConfig()).describe(SimConfig())
    for r in recs:
        assert r["completion"] == (" approve" if r["score"] >= th[r["group"]] else " deny")
        assert r["prompt"].endswith("Decision:") and f"group {r['group']}, credit score {r['score']}," in r["prompt"]
    assert recs[0]["prompt"].count("\n") == 1 and recs[2]["prompt"].count("\n") == 3  # history grows to 2
    assert recs == _build({"policy": "biased", "n": 25, "history": 2, "rounds": 5})
    assert recs != _build({"policy": "biased", "n": 25, "history": 2, "rounds": 5}, seed=1)
    blind = _build({"n": 3, "include_group": False})
    assert all("group" not in r["prompt"] for r in blind)


@pytest.mark.parametrize("options, message", [
    ({"policy": "fairest"}, "data.train.options.policy"),
    ({"n": 0}, "data.train.options.n"),
    ({"colour": 1}, "data.train.options.colour: unknown key"),
    ({"sim": {"groups": ["A", "A"]}}, "data.train.options.sim"),
])
def test_lending_policy_bad_options(options, message):
    with pytest.raises(UserError, match=message):
        _build(options)
