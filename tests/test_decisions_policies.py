"""Reference policies: thresholds match their definitions (checked by brute force and by simulation)."""

import math

import numpy as np
import pytest

from lorafair.errors import UserError
from lorafair.studies.decisions.metrics import compute_metrics
from lorafair.studies.decisions.policies import build_policy, max_profit_threshold
from lorafair.studies.decisions.simulator import SimConfig, repay_probability, run_episodes

CFG = SimConfig()


def _tables(cfg):
    """rate and profit tables over all thresholds t (grid, plus 'nobody'): tail sums computed directly."""
    s = cfg.score_grid()
    f = cfg.initial_score_pmf()
    p = repay_probability(s, cfg)
    ts = np.append(s, cfg.score_max + 1)
    above = s[None, :] >= ts[:, None]  # threshold × score
    approval = f @ above.T  # group × threshold
    tpr = (f * p) @ above.T / (f * p).sum(axis=1, keepdims=True)
    gain = (f * (p * cfg.interest_rate - (1 - p) * cfg.loss_rate)) @ above.T
    weight = np.asarray(cfg.group_shares) * cfg.expected_loan()
    return ts, approval, tpr, gain * weight[:, None]


def test_max_profit_threshold_hand_checked_and_optimal():
    # p(s) >= 0.8  <=>  s >= 600 + 50 ln 4 = 669.3
    assert max_profit_threshold(CFG) == math.ceil(600 + 50 * math.log(4)) == 670
    ts, _, _, profit = _tables(CFG)
    assert ts[np.argmax(profit.sum(axis=0))] == 670  # best single threshold by brute force
    assert build_policy("max_profit", CFG).describe(CFG) == {"A": 670, "B": 670}


def test_biased_policy_is_stricter_for_one_group():
    assert build_policy("biased", CFG).describe(CFG) == {"A": 670, "B": 730}
    cfg = SimConfig(biased_group="A", bias_offset=25)
    assert build_policy("biased", cfg).describe(cfg) == {"A": 695, "B": 670}


@pytest.mark.parametrize("kind", ["demographic_parity", "equal_opportunity"])
def test_fair_thresholds_equalise_the_rate_and_maximise_profit(kind):
    ts, approval, tpr, profit = _tables(CFG)
    rate = approval if kind == "demographic_parity" else tpr
    th = build_policy(kind, CFG).thresholds
    i = np.searchsorted(ts, th)
    diff = abs(rate[0, i[0]] - rate[1, i[1]])
    assert diff < 0.006  # equal up to one score point's mass
    # brute force over all threshold pairs at least as equal: none earns more
    close = np.abs(rate[0][:, None] - rate[1][None, :]) <= diff + 1e-12
    best = (profit[0][:, None] + profit[1][None, :])[close].max()
    assert profit[0, i[0]] + profit[1, i[1]] == pytest.approx(best, rel=1e-9)
    assert th[0] != th[1]  # the groups differ, so the fair thresholds do too


def test_policy_metrics_match_their_definitions_on_a_large_sample():
    """One round of 6000 episodes: every applicant drawn from the initial distributions."""
    big = dict(episodes=6000, rounds=1, seed=0)
    m = lambda name: {(r.metric, r.group): r.value for r in compute_metrics(  # noqa: E731
        run_episodes(build_policy(name, CFG), CFG, **big), n_boot=100)}
    dp, eo, mp, biased = m("demographic_parity"), m("equal_opportunity"), m("max_profit"), m("biased")
    assert dp[("approval_gap", "")] < 0.03
    assert eo[("tpr_gap", "")] < 0.03
    assert mp[("approval_gap", "")] > 0.15 and mp[("tpr_gap", "")] > 0.15  # the unconstrained lender is unfair
    assert biased[("approval_rate", "B")] < mp[("approval_rate", "B")] - 0.05
    assert mp[("profit", "")] > max(dp[("profit", "")], eo[("profit", "")], biased[("profit", "")])
    # group-blind threshold: changing only the group never changes the decision
    assert mp[("flip_rate", "")] == 0.0 and dp[("flip_rate", "")] > 0.0


def test_unknown_policy_is_a_user_error():
    with pytest.raises(UserError, match=r"reference_policy='fairest': expected one of max_profit, biased"):
        build_policy("fairest", CFG)
