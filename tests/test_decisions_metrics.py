"""Decision metrics on a hand-built log (2 episodes × 3 rounds), every value computed by hand."""

import numpy as np
import pytest

from lorafair.studies.decisions.metrics import compute_metrics, trajectory
from lorafair.studies.decisions.simulator import EpisodeLog


def _log():
    # episode 0: A(repays, approved), B(repays, denied), A(defaults, approved)
    # episode 1: B(repays, approved), A(defaults, denied), B(defaults, denied)
    group = np.array([[0, 1, 0], [1, 0, 1]])
    y = np.array([[1, 1, 0], [1, 0, 0]], bool)
    d = np.array([[1, 0, 1], [1, 0, 0]], bool)
    dcf = np.array([[1, 1, 1], [0, 0, 0]], bool)  # flips: e0 r1 (B), e1 r0 (B)
    ref = np.array([[1, 1, 0], [1, 0, 0]], bool)  # agrees 4 of 6
    profit = np.array([[2.5, 0, -10.0], [1.0, 0, 0]])
    ms = np.zeros((2, 4, 2))
    ms[0, 0], ms[0, -1] = [600, 560], [610, 560]
    ms[1, 0], ms[1, -1] = [640, 580], [640, 600]
    return EpisodeLog(["A", "B"], group, group * 0 + 650, y, d.astype(float), d, dcf, ref, profit, ms)


def test_metrics_hand_computed():
    rows = {(r.metric, r.group): r for r in compute_metrics(_log(), n_boot=200, seed=0)}
    v = lambda m, g="": rows[(m, g)].value  # noqa: E731
    assert v("approval_rate", "A") == pytest.approx(2 / 3)  # A: approved, approved, denied
    assert v("approval_rate", "B") == pytest.approx(1 / 3)  # B: denied, approved, denied
    assert v("approval_gap") == pytest.approx(1 / 3)
    assert v("approval_rate") == pytest.approx(3 / 6)
    assert v("tpr", "A") == pytest.approx(1.0)  # A repayers: e0r0 approved
    assert v("tpr", "B") == pytest.approx(0.5)  # B repayers: e0r1 denied, e1r0 approved
    assert v("tpr_gap") == pytest.approx(0.5)
    assert v("fpr", "A") == pytest.approx(0.5)  # A defaulters: e0r2 approved, e1r1 denied
    assert v("fpr", "B") == pytest.approx(0.0)
    assert rows[("tpr", "B")].n == 2 and rows[("approval_rate", "")].n == 6
    assert v("profit") == pytest.approx(((2.5 - 10) / 3 + 1 / 3) / 2)
    assert v("score_change", "A") == pytest.approx((10 + 0) / 2)
    assert v("score_change", "B") == pytest.approx((0 + 20) / 2)
    assert v("final_score_gap") == pytest.approx(625 - 580)
    assert v("flip_rate") == pytest.approx(2 / 6)
    assert v("flip_rate", "B") == pytest.approx(2 / 3) and v("flip_rate", "A") == 0.0
    assert v("agreement") == pytest.approx(4 / 6)
    r = rows[("approval_gap", "")]
    assert r.ci_low <= r.value <= r.ci_high


def test_metrics_are_reproducible_and_seeded():
    a = compute_metrics(_log(), n_boot=200, seed=1)
    b = compute_metrics(_log(), n_boot=200, seed=1)
    assert [(r.ci_low, r.ci_high) for r in a] == [(r.ci_low, r.ci_high) for r in b]


def test_trajectory_hand_computed():
    tr = trajectory(_log())
    assert tr["round"] == [1, 2, 3]
    # round 1: A {e0: approved}, B {e1: approved}: every decision the same -> undefined (None), not a gap of 0;
    # round 2: A {e1: denied}, B {e0: denied}: constant too; round 3: A {e0: approved} 1, B {e1: denied} 0 -> 1
    assert tr["approval_gap"] == [None, None, 1.0]
    assert tr["approval_gap_cumulative"][0] is None  # round 1 alone: constant
    assert tr["approval_gap_cumulative"][-1] == pytest.approx(1 / 3)
    assert tr["mean_score"]["A"][-1] == 625 and tr["mean_score"]["B"][-1] == 580
    assert tr["mean_score_initial"] == {"A": 620.0, "B": 570.0}
    assert len(tr["mean_score"]["A"]) == len(tr["round"])
