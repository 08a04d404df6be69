"""Reference lending policies: group-specific score thresholds (approve iff score >= threshold[group]).

Following Liu et al. 2018 (section 5), the thresholds are fitted on the *initial* score distribution of
each group (the exact pmf of :meth:`SimConfig.initial_score_pmf`) and then kept fixed during episodes:

- ``max_profit``: one threshold for everybody, the lowest score whose expected profit per loan is
  non-negative, i.e. p(s) >= loss_rate / (interest_rate + loss_rate).
- ``biased``: the max-profit threshold, plus ``bias_offset`` points for ``biased_group`` (a lender that
  historically asked more of one group).
- ``demographic_parity``: group thresholds with equal approval rates P(score >= t_g | g), the common rate
  chosen to maximise the lender's expected profit (Liu et al.'s DemParity).
- ``equal_opportunity``: group thresholds with equal true-positive rates
  P(score >= t_g | g, repays) = sum_{s>=t_g} f_g(s) p(s) / sum_s f_g(s) p(s), the common rate chosen to
  maximise expected profit (Liu et al.'s EqOpt).

Scores are integers, so the constrained rates are equal up to the mass of one score point per group
(about 0.6 % with the default sd of 70).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lorafair.errors import UserError
from lorafair.studies.decisions.simulator import Applicants, SimConfig, repay_probability

POLICIES = ("max_profit", "biased", "demographic_parity", "equal_opportunity")


@dataclass
class ThresholdPolicy:
    """Approve iff score >= thresholds[group index]. ``approve_prob`` returns 0.0 or 1.0."""

    name: str
    thresholds: np.ndarray  # one per group

    def approve_prob(self, applicants: Applicants, histories=None) -> np.ndarray:
        return (np.asarray(applicants.score) >= self.thresholds[np.asarray(applicants.group)]).astype(np.float64)

    def describe(self, cfg: SimConfig) -> dict[str, int]:
        return {g: int(t) for g, t in zip(cfg.groups, self.thresholds)}


def max_profit_threshold(cfg: SimConfig) -> int:
    """Lowest score s with p(s)·interest_rate − (1 − p(s))·loss_rate >= 0 (score_max + 1 if none)."""
    s = cfg.score_grid()
    ok = repay_probability(s, cfg) * cfg.interest_rate - (1 - repay_probability(s, cfg)) * cfg.loss_rate >= 0
    return int(s[ok][0]) if ok.any() else cfg.score_max + 1


def _tails(weights: np.ndarray) -> np.ndarray:
    """tails[g, i] = sum of weights[g, i:] / sum weights[g] (the rate when the threshold is grid[i]);
    a last column 0 stands for 'approve nobody' (threshold score_max + 1)."""
    w = weights / weights.sum(axis=1, keepdims=True)
    t = np.cumsum(w[:, ::-1], axis=1)[:, ::-1]
    return np.concatenate([t, np.zeros((len(w), 1))], axis=1)


def fit_equal_rate_thresholds(cfg: SimConfig, kind: str, n_grid: int = 2001) -> np.ndarray:
    """Group thresholds with (approximately) equal rates maximising the lender's expected profit.

    ``kind="demographic_parity"``: the rate is P(approve | g); ``"equal_opportunity"``: P(approve | g, repays).
    For each target rate on a grid of ``n_grid`` values in [0, 1], each group's threshold is the one whose
    rate is closest to the target; the target with the highest expected profit per applicant,
    sum_g share_g · E[loan_g] · sum_{s >= t_g} f_g(s) (p(s)·interest_rate − (1 − p(s))·loss_rate), wins.
    """
    grid = cfg.score_grid()
    f = cfg.initial_score_pmf()
    p = repay_probability(grid, cfg)
    if kind == "demographic_parity":
        rate = _tails(f)
    elif kind == "equal_opportunity":
        rate = _tails(f * p)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    gain = f * (p * cfg.interest_rate - (1 - p) * cfg.loss_rate)  # expected profit per unit loan, per score
    profit_tail = np.concatenate([np.cumsum(gain[:, ::-1], axis=1)[:, ::-1], np.zeros((len(f), 1))], axis=1)
    weight = np.asarray(cfg.group_shares) * cfg.expected_loan()
    best, best_idx = -np.inf, None
    for target in np.linspace(0.0, 1.0, n_grid):
        idx = np.abs(rate - target).argmin(axis=1)  # per group: threshold index with the closest rate
        value = float((weight * profit_tail[np.arange(len(f)), idx]).sum())
        if value > best + 1e-12:
            best, best_idx = value, idx
    thresholds = np.append(grid, cfg.score_max + 1)[best_idx]
    return thresholds.astype(np.int64)


def build_policy(name: str, cfg: SimConfig, field: str = "reference_policy") -> ThresholdPolicy:
    """The reference policy ``name`` (one of :data:`POLICIES`) for the simulation ``cfg``."""
    G = len(cfg.groups)
    if name == "max_profit":
        th = np.full(G, max_profit_threshold(cfg))
    elif name == "biased":
        th = np.full(G, max_profit_threshold(cfg))
        th[cfg.groups.index(cfg.biased_group)] += cfg.bias_offset
    elif name in ("demographic_parity", "equal_opportunity"):
        th = fit_equal_rate_thresholds(cfg, name)
    else:
        raise UserError(field, name, f"one of {', '.join(POLICIES)}")
    return ThresholdPolicy(name, np.asarray(th, dtype=np.int64))
