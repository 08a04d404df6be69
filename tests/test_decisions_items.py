"""The decisions study's per-episode items and metric roles: every statistic recomputes its row from the
episodes; constant decisions (approve-all, deny-all) make the gaps and flip rates undefined, never fair."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from lorafair.models.tiny import build_tiny
from lorafair.run.paired import load_items, paired_rows, save_items
from lorafair.studies.base import metric_specs
from lorafair.studies.decisions import DecisionsStudy
from lorafair.studies.decisions.lm_policy import LMPolicy
from lorafair.studies.decisions.metrics import (
    RATES,
    STATS,
    UNDEFINED_CONSTANT,
    compute_metrics,
    episode_items,
    rate,
    score_change,
    trajectory,
)
from lorafair.studies.decisions.policies import build_policy
from lorafair.studies.decisions.simulator import EpisodeLog, SimConfig, run_episodes

from helpers_lf import eval_context

UNDEFINED_IF_CONSTANT = ("approval_gap", "tpr_gap", "fpr_gap", "flip_rate")


def _log(approved, approved_cf=None):
    """2 episodes × 3 rounds; groups as in test_decisions_metrics."""
    group = np.array([[0, 1, 0], [1, 0, 1]])
    y = np.array([[1, 1, 0], [1, 0, 0]], bool)
    d = np.asarray(approved, bool)
    dcf = d if approved_cf is None else np.asarray(approved_cf, bool)
    profit = np.where(d, np.where(y, 2.0, -5.0), 0.0)
    ms = np.zeros((2, 4, 2))
    ms[:, 0], ms[:, -1] = [620, 570], [630, 575]
    return EpisodeLog(["A", "B"], group, group * 0 + 650, y, d.astype(float), d, dcf, d, profit, ms)


def _b1(cols):
    return {k: v[None, :] for k, v in cols.items()}


def _rows(rows):
    return {(r.metric, r.group): r for r in rows}


def _check_items_equal_rows(cols, rows):
    rows = _rows(rows)
    for name, stat in STATS.items():
        v = float(stat(_b1(cols))[0])
        r = rows[(name, "")]
        assert (math.isnan(v) and math.isnan(r.value)) or v == pytest.approx(r.value, abs=1e-12), (name, v, r)
    for g in ("A", "B"):
        for name in RATES:
            v = float(rate(name, g)(_b1(cols))[0])
            r = rows[(name, g)]
            assert (math.isnan(v) and math.isnan(r.value)) or v == pytest.approx(r.value, abs=1e-12), (name, g)
        assert score_change(g)(_b1(cols))[0] == pytest.approx(rows[("score_change", g)].value)


def test_metric_roles():
    specs = metric_specs(DecisionsStudy)
    for m in ("approval_gap", "tpr_gap"):
        assert specs[m].role == "target" and specs[m].ideal == 0.0 and specs[m].direction == "lower" and specs[m].unit == "episodes"
    assert specs["profit"].role == "guard" and specs["profit"].direction == "higher" and specs["profit"].ideal is None
    assert {s.name for s in specs.values() if s.role != "diagnostic"} == {"approval_gap", "tpr_gap", "profit"}


@pytest.mark.parametrize("value", [0, 1])  # deny everyone, approve everyone
def test_constant_decisions_are_undefined_not_fair(value):
    log = _log(np.full((2, 3), value))
    rows = _rows(compute_metrics(log, n_boot=200))
    for m in UNDEFINED_IF_CONSTANT:
        r = rows[(m, "")]
        assert math.isnan(r.value) and r.note == UNDEFINED_CONSTANT and r.ci_low is None, m
    assert rows[("flip_rate", "A")].note == UNDEFINED_CONSTANT
    # what the constant policy does is still reported
    assert rows[("approval_rate", "")].value == value and rows[("approval_rate", "B")].value == value
    assert rows[("profit", "")].value == pytest.approx(0.0 if value == 0 else ((2 + 2 - 5) / 3 + (2 - 5 - 5) / 3) / 2)
    assert rows[("agreement", "")].note == "" and math.isfinite(rows[("final_score_gap", "")].value)
    cols = episode_items(log).columns
    for m in UNDEFINED_IF_CONSTANT:
        assert np.isnan(STATS[m](_b1(cols))[0]), m
    assert trajectory(log)["approval_gap"] == [None, None, None]
    assert trajectory(log)["approval_gap_cumulative"] == [None, None, None]


def test_one_constant_group_keeps_gaps_defined():
    # every B denied, A: approved, denied, approved -> a real gap of 2/3
    d = np.array([[1, 0, 0], [0, 1, 0]])  # e0: A r0 approved, B r1 denied, A r2 denied; e1: B denied, A approved, B denied
    rows = _rows(compute_metrics(_log(d), n_boot=200))
    assert rows[("approval_gap", "")].value == pytest.approx(2 / 3) and rows[("approval_gap", "")].note == ""
    assert rows[("approval_rate", "B")].value == 0.0
    # decisions vary, but the group never flips: a defined flip rate of 0
    assert rows[("flip_rate", "")].value == 0.0 and rows[("flip_rate", "")].note == ""


def test_factual_constant_but_counterfactual_not_keeps_flip_rate_defined():
    d = np.zeros((2, 3))
    cf = np.array([[0, 1, 0], [0, 0, 0]])
    rows = _rows(compute_metrics(_log(d, cf), n_boot=200))
    assert rows[("approval_gap", "")].note == UNDEFINED_CONSTANT
    assert rows[("flip_rate", "")].value == pytest.approx(1 / 6)


def test_empty_denominator_has_a_note():
    # nobody in B would default -> B's FPR and the FPR gap are undefined, and say why
    log = _log(np.array([[1, 0, 1], [1, 0, 0]]))
    log.would_repay[1, 2] = True
    rows = _rows(compute_metrics(log, n_boot=100))
    assert rows[("fpr", "B")].note == "undefined: no applicant who would default in group B"
    assert rows[("fpr_gap", "")].note == "undefined: no applicant who would default in group B"
    assert math.isfinite(rows[("tpr_gap", "")].value)


@pytest.mark.parametrize("policy", ["max_profit", "biased", "demographic_parity"])
def test_item_statistics_equal_the_rows_on_simulated_episodes(policy):
    cfg = SimConfig()
    log = run_episodes(build_policy(policy, cfg), cfg, episodes=12, rounds=6, seed=2, history=1,
                       reference=build_policy("equal_opportunity", cfg))
    items = episode_items(log)
    assert items.ids == [str(e) for e in range(12)]
    rows = compute_metrics(log, n_boot=200, seed=2)
    _check_items_equal_rows(items.columns, rows)
    # the interval is the same paired bootstrap over episodes the runner draws
    r = _rows(rows)[("approval_gap", "")]
    idx = np.random.default_rng(2).integers(0, 12, size=(200, 12))
    draws = STATS["approval_gap"]({k: v[idx] for k, v in items.columns.items()})
    draws = draws[np.isfinite(draws)]
    assert (r.ci_low, r.ci_high) == pytest.approx(tuple(np.quantile(draws, [0.025, 0.975])))


def _ctx(tmp_path, cfg, folder, model=None):
    m, tok = build_tiny("llama")
    return eval_context(model=model or m, tokenizer=tok, out_dir=tmp_path / folder, study_config=cfg)


def test_study_items_and_rows_on_tiny_model(tmp_path):
    cfg = DecisionsStudy.Config(episodes=4, rounds=3, n_boot=100)
    res = DecisionsStudy().evaluate(_ctx(tmp_path, cfg, "base"))
    items = res.items["episodes"]
    assert items.ids == ["0", "1", "2", "3"] and items.columns["n:A"].sum() + items.columns["n:B"].sum() == 12
    _check_items_equal_rows(items.columns, res.metrics)


def test_study_with_constant_model_decisions(tmp_path, monkeypatch):
    """A model that denies everyone: gaps and flip rates undefined in the rows, the items and the paired rows."""
    cfg = DecisionsStudy.Config(episodes=4, rounds=3, n_boot=100)
    base = DecisionsStudy().evaluate(_ctx(tmp_path, cfg, "full"))  # the tiny model itself, as "full"
    monkeypatch.setattr(LMPolicy, "approve_prob", lambda self, a, h: np.zeros(len(a)))
    res = DecisionsStudy().evaluate(_ctx(tmp_path, cfg, "base"))
    rows = _rows(res.metrics)
    assert res.info["constant_decisions"]
    for m in UNDEFINED_IF_CONSTANT:
        assert math.isnan(rows[(m, "")].value) and rows[(m, "")].note == UNDEFINED_CONSTANT, m
    assert rows[("profit", "")].value == 0.0 and rows[("approval_rate", "")].value == 0.0
    by_variant = {}
    for name, r in (("base", res), ("full", base), ("lora-r2", base)):
        path = save_items(tmp_path / name / "results", "decisions", r.items)
        by_variant[name] = ({"name": name, "method": name.split("-")[0], "rank": None}, load_items(path))
    paired = {(r["variant"], r["metric"]): r for r in
              paired_rows("decisions", metric_specs(DecisionsStudy).values(), by_variant, 0, n_boot=100)}
    for m in ("approval_gap", "tpr_gap"):
        assert paired[("lora-r2", f"delta_{m}")]["note"] == "undefined: the metric is undefined for base"
    assert paired[("lora-r2", "delta_profit")]["note"] == ""  # the guard stays defined


def test_finalize_reference_rows_carry_notes(tmp_path):
    cfg = DecisionsStudy.Config(episodes=4, rounds=3, n_boot=100, reference_policies=["max_profit", "biased"])
    rows = DecisionsStudy.finalize(tmp_path, SimpleNamespace(studies={"decisions": cfg}, seeds=[0]), [])
    assert rows and all("note" in r for r in rows)
    gaps = [r for r in rows if r["metric"] == "approval_gap"]
    assert all((r["value"] is None) == bool(r["note"]) for r in gaps)
