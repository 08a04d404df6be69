"""The lending simulator: repayment curve, profit, score dynamics, determinism, config validation."""

import math

import numpy as np
import pytest
from pydantic import ValidationError

from lorafair.studies.decisions.simulator import (
    Applicants, LendingEnv, SimConfig, loan_profit, next_score, repay_probability, run_episodes,
)


class ApproveAll:
    def approve_prob(self, applicants, histories):
        return np.ones(len(applicants))


class ApproveNone:
    def approve_prob(self, applicants, histories):
        return np.zeros(len(applicants))


def test_repayment_curve_hand_checked():
    cfg = SimConfig()  # midpoint 600, scale 50
    p = repay_probability([600, 650, 550, 700], cfg)
    assert p[0] == pytest.approx(0.5)
    assert p[1] == pytest.approx(1 / (1 + math.exp(-1)))  # 0.7311
    assert p[2] == pytest.approx(1 / (1 + math.exp(1)))  # 0.2689
    assert p[3] == pytest.approx(0.880797, abs=1e-6)
    assert np.all(np.diff(repay_probability(cfg.score_grid(), cfg)) > 0)


def test_profit_and_score_dynamics_hand_checked():
    cfg = SimConfig(score_gain=75, score_loss=150, interest_rate=0.25, loss_rate=1.0)
    approved = [True, True, False, True, True]
    repaid = [True, False, True, True, False]
    loan = [10.0, 10.0, 10.0, 4.0, 2.0]
    assert loan_profit(approved, repaid, loan, cfg).tolist() == [2.5, -10.0, 0.0, 1.0, -2.0]
    score = [700, 700, 700, 800, 400]
    # +75; -150; denied unchanged; 800+75 clipped to 850; 400-150 clipped to 300
    assert next_score(score, approved, repaid, cfg).tolist() == [775, 550, 700, 850, 300]
    assert cfg.break_even_probability() == pytest.approx(0.8)


def test_initial_pmf_is_a_distribution_with_the_configured_means():
    cfg = SimConfig()
    f = cfg.initial_score_pmf()
    assert f.shape == (2, 551)
    assert f.sum(axis=1) == pytest.approx([1.0, 1.0])
    means = f @ cfg.score_grid()
    assert means == pytest.approx(cfg.score_mean, abs=0.5)  # clipping barely moves the mean at sd 70


def test_group_sizes_largest_remainder():
    assert SimConfig(population=41, group_shares=[0.5, 0.5]).group_sizes().tolist() == [21, 20]
    assert SimConfig(population=10, group_shares=[0.7, 0.3]).group_sizes().tolist() == [7, 3]


def test_seeded_determinism_and_independence_from_batch_size():
    cfg = SimConfig()
    a = LendingEnv(cfg, 5, 7, seed=3)
    b = LendingEnv(cfg, 5, 7, seed=3)
    c = LendingEnv(cfg, 2, 7, seed=3)  # fewer episodes: the first two are the same episodes
    d = LendingEnv(cfg, 5, 7, seed=4)
    assert np.array_equal(a.scores, b.scores) and np.array_equal(a.member, b.member)
    assert np.array_equal(a.scores[:2], c.scores) and np.array_equal(a.u_repay[:2], c.u_repay)
    assert not np.array_equal(a.scores, d.scores)
    la = run_episodes(ApproveAll(), cfg, episodes=5, rounds=7, seed=3, history=2)
    lb = run_episodes(ApproveAll(), cfg, episodes=5, rounds=7, seed=3, history=2)
    for k in ("group", "score", "approved", "profit", "mean_score"):
        assert np.array_equal(getattr(la, k), getattr(lb, k))


def test_train_and_eval_streams_differ():
    cfg = SimConfig()
    assert not np.array_equal(LendingEnv(cfg, 3, 4, seed=0, stream=0).scores, LendingEnv(cfg, 3, 4, seed=0, stream=1).scores)


def test_episode_dynamics_follow_the_rules():
    """Replay a logged episode by hand: each approved applicant's score moves by +gain / -loss."""
    cfg = SimConfig(population=6)
    env = LendingEnv(cfg, 3, 10, seed=1)
    start = env.scores.copy()
    for t in range(10):
        a = env.applicants()
        m = env.member[:, t]
        before = env.scores[np.arange(3), m].copy()
        assert np.array_equal(a.score, before)
        assert np.array_equal(a.would_repay, env.u_repay[:, t] < repay_probability(before, cfg))
        profit = env.step(np.ones(3, bool))
        after = env.scores[np.arange(3), m]
        expected = np.clip(before + np.where(a.would_repay, 75, -150), 300, 850)
        assert np.array_equal(after, expected)
        assert np.allclose(profit, np.where(a.would_repay, 0.25 * a.loan, -a.loan))
    assert len(env.history[0]) == 10 and env.history[0][-1].outcome in ("repaid", "defaulted")
    with pytest.raises(RuntimeError):
        env.applicants()
    # denying everybody leaves every score where it started
    none = run_episodes(ApproveNone(), cfg, episodes=3, rounds=10, seed=1)
    assert np.array_equal(none.mean_score[:, 0], none.mean_score[:, -1])
    assert none.profit.sum() == 0
    assert np.allclose(none.mean_score[:, 0], np.stack([start[:, :3].mean(1), start[:, 3:].mean(1)], 1))


def test_counterfactual_swaps_only_the_group():
    a = Applicants(np.array([0, 1, 1]), np.array([600, 700, 650]), np.ones(3), np.ones(3), np.full(3, .5), np.array([True, False, True]))
    s = a.swapped(2)
    assert s.group.tolist() == [1, 0, 0]
    assert np.array_equal(s.score, a.score) and np.array_equal(s.would_repay, a.would_repay)


def test_sampled_decisions_use_the_seeded_draw():
    class Half:
        def approve_prob(self, applicants, histories):
            return np.full(len(applicants), 0.5)

    cfg = SimConfig()
    log = run_episodes(Half(), cfg, episodes=200, rounds=5, seed=0, decision="sample")
    env = LendingEnv(cfg, 200, 5, seed=0)
    assert np.array_equal(log.approved, env.u_decide < 0.5)
    assert np.array_equal(log.approved, log.approved_cf)  # same draw for the counterfactual
    assert 0.4 < log.approved.mean() < 0.6
    assert run_episodes(Half(), cfg, episodes=3, rounds=2, seed=0).approved.all()  # threshold: 0.5 >= 0.5
    with pytest.raises(ValueError, match="decision"):
        run_episodes(Half(), cfg, episodes=1, rounds=1, seed=0, decision="greedy")


@pytest.mark.parametrize("kwargs, message", [
    ({"groups": ["A", "A"]}, "distinct"),
    ({"score_mean": [600.0]}, "score_mean must have one value per group"),
    ({"group_shares": [0.6, 0.6]}, "sum to 1"),
    ({"score_min": 900}, "score_min"),
    ({"biased_group": "C"}, "biased_group 'C'"),
    ({"loan_fraction": (0.5, 0.1)}, "loan_fraction"),
    ({"colour": "red"}, "Extra inputs"),
])
def test_bad_sim_config(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        SimConfig(**kwargs)
