"""A lending simulation with delayed impact (after Liu, Dean, Rolf, Simchowitz, Hardt 2018,
"Delayed impact of fair machine learning", ICML).

Each *episode* is a small population of ``population`` people in groups (default "A" and "B") whose
credit scores start from group-specific distributions. Each *round*, one member of the population,
drawn uniformly at random, applies for a loan (so every episode has one applicant per round; episodes
run in parallel as a batch). The policy approves or denies. An approved applicant repays with
probability

    p(s) = 1 / (1 + exp(-(s - repay_midpoint) / repay_scale))             (logistic in the score s)

and then the lender gains ``interest_rate * loan`` and the applicant's score rises by ``score_gain``;
otherwise (default) the lender loses ``loss_rate * loan`` and the score falls by ``score_loss``
(scores stay in [score_min, score_max]). A denied applicant's score does not change and the lender
gains nothing. The group mean scores of the population therefore evolve with the policy's decisions:
this is the *delayed impact* of Liu et al. (their defaults: +75 after repayment, −150 after default,
FICO range 300–850).

Counterfactual repayment: every arrival carries a uniform draw ``u``; the applicant *would repay*
iff ``u < p(s)``. The draw is fixed before the decision, so the outcome of an approval is that draw,
and for denied applicants it says whether they would have repaid (used for true-positive rates).

Determinism: all randomness (population, arrivals, ``u``, loan sizes, sampling draws) is drawn when an
environment is created, from ``numpy.random.default_rng([seed, stream, episode])`` per episode, so an
episode is the same whatever the number of parallel episodes, and different policies evaluated with the
same seed face the same arrivals (common random numbers); only the scores depend on the decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import ndtr

EVAL_STREAM = 0  # random stream of evaluation episodes
TRAIN_STREAM = 1  # random stream of the episodes that generate training (shift) data


class SimConfig(BaseModel):
    """Parameters of the lending simulation (every field a recipe field under ``studies.decisions.sim``)."""

    model_config = ConfigDict(extra="forbid")

    groups: list[str] = Field(default_factory=lambda: ["A", "B"], min_length=2, description="Group names, as shown to the policy.")
    group_shares: list[float] = Field(default_factory=lambda: [0.5, 0.5], description="Share of each group in the population (sums to 1).")
    score_mean: list[float] = Field(default_factory=lambda: [650.0, 590.0], description="Mean initial credit score per group (before rounding and clipping).")
    score_sd: list[float] = Field(default_factory=lambda: [70.0, 70.0], description="Standard deviation of the initial credit score per group.")
    score_min: int = Field(default=300, description="Lowest credit score (scores are integers clipped to [score_min, score_max]).")
    score_max: int = Field(default=850, description="Highest credit score.")
    income_median: list[float] = Field(default_factory=lambda: [55.0, 45.0], description="Median yearly income per group, in thousands (log-normal).")
    income_sigma: float = Field(default=0.35, gt=0, description="Log-normal sigma of income.")
    loan_fraction: tuple[float, float] = Field(default=(0.1, 0.4), description="Loan amount = income × U(low, high), rounded to 0.1 (thousands).")
    repay_midpoint: float = Field(default=600.0, description="Score at which the repayment probability is 0.5.")
    repay_scale: float = Field(default=50.0, gt=0, description="Logistic scale of the repayment curve (score points per unit log-odds).")
    interest_rate: float = Field(default=0.25, gt=0, description="Lender gain on a repaid loan, as a fraction of the loan amount.")
    loss_rate: float = Field(default=1.0, gt=0, description="Lender loss on a defaulted loan, as a fraction of the loan amount.")
    score_gain: int = Field(default=75, ge=0, description="Score increase after a repaid loan (Liu et al. 2018: +75).")
    score_loss: int = Field(default=150, ge=0, description="Score decrease after a default (Liu et al. 2018: −150).")
    population: int = Field(default=20, ge=2, description="People per episode; one of them, uniformly drawn, applies each round.")
    biased_group: str = Field(default="B", description="Group held to a stricter threshold by the historically biased reference policy.")
    bias_offset: int = Field(default=60, ge=0, description="How many score points stricter the biased policy is for `biased_group`.")

    @model_validator(mode="after")
    def _check(self):
        g = len(self.groups)
        if len(set(self.groups)) != g:
            raise ValueError(f"groups must be distinct, got {self.groups}")
        for name in ("group_shares", "score_mean", "score_sd", "income_median"):
            v = getattr(self, name)
            if len(v) != g:
                raise ValueError(f"{name} must have one value per group ({g}), got {len(v)}")
        if any(s <= 0 for s in self.group_shares) or abs(sum(self.group_shares) - 1) > 1e-6:
            raise ValueError(f"group_shares must be positive and sum to 1, got {self.group_shares}")
        if any(s <= 0 for s in self.score_sd):
            raise ValueError("score_sd must be positive")
        if self.score_min >= self.score_max:
            raise ValueError(f"score_min ({self.score_min}) must be below score_max ({self.score_max})")
        lo, hi = self.loan_fraction
        if not 0 < lo <= hi:
            raise ValueError(f"loan_fraction must satisfy 0 < low <= high, got {self.loan_fraction}")
        if self.biased_group not in self.groups:
            raise ValueError(f"biased_group {self.biased_group!r} is not one of groups {self.groups}")
        if self.population < g:
            raise ValueError(f"population ({self.population}) must hold at least one person per group")
        return self

    # --- derived quantities -------------------------------------------------------------------

    def score_grid(self) -> np.ndarray:
        """All possible scores, score_min..score_max."""
        return np.arange(self.score_min, self.score_max + 1)

    def group_sizes(self) -> np.ndarray:
        """People per group in an episode: shares × population, rounded by largest remainder (sum = population)."""
        raw = np.asarray(self.group_shares) * self.population
        n = np.floor(raw).astype(int)
        for i in np.argsort(-(raw - n), kind="stable")[: self.population - n.sum()]:
            n[i] += 1
        if (n == 0).any():
            raise ValueError("population too small: a group would have nobody")
        return n

    def initial_score_pmf(self) -> np.ndarray:
        """(groups × scores) exact pmf of the initial score: N(mean, sd) rounded to an integer and clipped."""
        s = self.score_grid().astype(float)
        out = []
        for mu, sd in zip(self.score_mean, self.score_sd):
            upper = ndtr((s + 0.5 - mu) / sd)
            lower = ndtr((s - 0.5 - mu) / sd)
            upper[-1], lower[0] = 1.0, 0.0  # clipping puts the tails on the end points
            out.append(upper - lower)
        return np.asarray(out)

    def expected_loan(self) -> np.ndarray:
        """Mean loan amount per group: median × exp(sigma²/2) × mean of U(low, high) (rounding ignored)."""
        lo, hi = self.loan_fraction
        return np.asarray(self.income_median) * math.exp(self.income_sigma**2 / 2) * (lo + hi) / 2

    def break_even_probability(self) -> float:
        """Repayment probability at which a loan's expected profit is zero: loss / (gain + loss)."""
        return self.loss_rate / (self.interest_rate + self.loss_rate)


def repay_probability(score, cfg: SimConfig) -> np.ndarray:
    """p(s) = 1 / (1 + exp(-(s - repay_midpoint) / repay_scale))."""
    s = np.asarray(score, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-(s - cfg.repay_midpoint) / cfg.repay_scale))


def loan_profit(approved, repaid, loan, cfg: SimConfig) -> np.ndarray:
    """Lender's profit: +interest_rate·loan if approved and repaid, −loss_rate·loan if approved and
    defaulted, 0 if denied."""
    approved = np.asarray(approved, bool)
    repaid = np.asarray(repaid, bool)
    loan = np.asarray(loan, dtype=np.float64)
    return np.where(approved, np.where(repaid, cfg.interest_rate * loan, -cfg.loss_rate * loan), 0.0)


def next_score(score, approved, repaid, cfg: SimConfig) -> np.ndarray:
    """Score after a decision: +score_gain if approved and repaid, −score_loss if approved and defaulted,
    unchanged if denied; clipped to [score_min, score_max]."""
    score = np.asarray(score, dtype=np.int64)
    approved = np.asarray(approved, bool)
    repaid = np.asarray(repaid, bool)
    delta = np.where(approved, np.where(repaid, cfg.score_gain, -cfg.score_loss), 0)
    return np.clip(score + delta, cfg.score_min, cfg.score_max)


@dataclass
class Applicants:
    """One applicant per parallel episode (arrays of length ``episodes``)."""

    group: np.ndarray  # int index into cfg.groups
    score: np.ndarray  # int
    income: np.ndarray  # thousands
    loan: np.ndarray  # thousands
    repay_prob: np.ndarray
    would_repay: np.ndarray  # bool: the counterfactual repayment draw

    def __len__(self) -> int:
        return len(self.group)

    def with_group(self, group: np.ndarray) -> "Applicants":
        """The same applicants with only the group changed (for counterfactual flips)."""
        return Applicants(np.asarray(group), self.score, self.income, self.loan, self.repay_prob, self.would_repay)

    def swapped(self, n_groups: int) -> "Applicants":
        """Counterfactual: group g becomes (g + 1) mod n_groups (A <-> B for two groups)."""
        return self.with_group((self.group + 1) % n_groups)

    @staticmethod
    def concat(parts: list["Applicants"]) -> "Applicants":
        return Applicants(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                            ("group", "score", "income", "loan", "repay_prob", "would_repay")))


@dataclass
class Step:
    """A past decision as shown in the policy's context (``outcome`` is None when denied)."""

    group: str
    score: int
    income: float
    loan: float
    approved: bool
    outcome: Optional[str] = None  # "repaid" | "defaulted" | None


class LendingEnv:
    """``episodes`` parallel episodes of ``rounds`` rounds. Use :meth:`applicants` then :meth:`step` each round."""

    def __init__(self, cfg: SimConfig, episodes: int, rounds: int, seed: int, stream: int = EVAL_STREAM):
        if episodes < 1 or rounds < 1:
            raise ValueError("episodes and rounds must be positive")
        self.cfg, self.episodes, self.rounds = cfg, episodes, rounds
        sizes = cfg.group_sizes()
        self.member_group = np.repeat(np.arange(len(sizes)), sizes)  # same composition in every episode
        n = cfg.population
        lo, hi = cfg.loan_fraction
        self.scores = np.empty((episodes, n), dtype=np.int64)
        self.income = np.empty((episodes, n))
        self.member = np.empty((episodes, rounds), dtype=np.int64)
        self.u_repay = np.empty((episodes, rounds))
        self.u_decide = np.empty((episodes, rounds))  # for sampled decisions (common to factual and counterfactual)
        self.loan_frac = np.empty((episodes, rounds))
        mean = np.asarray(cfg.score_mean)[self.member_group]
        sd = np.asarray(cfg.score_sd)[self.member_group]
        med = np.asarray(cfg.income_median)[self.member_group]
        for e in range(episodes):
            rng = np.random.default_rng([seed, stream, e])
            self.scores[e] = np.clip(np.rint(rng.normal(mean, sd)), cfg.score_min, cfg.score_max)
            self.income[e] = np.round(med * np.exp(cfg.income_sigma * rng.standard_normal(n)), 1)
            self.member[e] = rng.integers(0, n, size=rounds)
            self.u_repay[e] = rng.random(rounds)
            self.u_decide[e] = rng.random(rounds)
            self.loan_frac[e] = rng.uniform(lo, hi, size=rounds)
        self.t = 0
        self.history: list[list[Step]] = [[] for _ in range(episodes)]

    def group_mean_scores(self) -> np.ndarray:
        """(episodes × groups) mean score of each group's members now."""
        g = len(self.cfg.groups)
        return np.stack([self.scores[:, self.member_group == k].mean(axis=1) for k in range(g)], axis=1)

    def applicants(self) -> Applicants:
        """This round's applicant in every episode."""
        if self.t >= self.rounds:
            raise RuntimeError("episode finished")
        idx = np.arange(self.episodes)
        m = self.member[:, self.t]
        score = self.scores[idx, m]
        p = repay_probability(score, self.cfg)
        income = self.income[idx, m]
        loan = np.maximum(np.round(income * self.loan_frac[:, self.t], 1), 0.1)
        return Applicants(self.member_group[m], score, income, loan, p, self.u_repay[:, self.t] < p)

    def recent(self, h: int) -> list[list[Step]]:
        """The last ``h`` decisions of each episode (oldest first)."""
        return [hist[-h:] if h > 0 else [] for hist in self.history]

    def step(self, approved: np.ndarray) -> np.ndarray:
        """Apply this round's decisions; return the lender's profit per episode."""
        a = self.applicants()
        approved = np.asarray(approved, bool)
        idx = np.arange(self.episodes)
        m = self.member[:, self.t]
        profit = loan_profit(approved, a.would_repay, a.loan, self.cfg)
        self.scores[idx, m] = next_score(a.score, approved, a.would_repay, self.cfg)
        for e in range(self.episodes):
            outcome = ("repaid" if a.would_repay[e] else "defaulted") if approved[e] else None
            self.history[e].append(Step(self.cfg.groups[a.group[e]], int(a.score[e]), float(a.income[e]), float(a.loan[e]), bool(approved[e]), outcome))
        self.t += 1
        return profit


@dataclass
class EpisodeLog:
    """Everything measured over a batch of episodes; arrays are (episodes × rounds) unless said."""

    groups: list[str]
    group: np.ndarray
    score: np.ndarray
    would_repay: np.ndarray
    approve_prob: np.ndarray
    approved: np.ndarray
    approved_cf: np.ndarray  # decision with only the group changed (same history)
    reference: np.ndarray  # the reference policy's decision on the same applicant and state
    profit: np.ndarray
    mean_score: np.ndarray  # (episodes × (rounds + 1) × groups): group mean scores before round 1 and after each round
    info: dict = field(default_factory=dict)


def run_episodes(policy, cfg: SimConfig, *, episodes: int, rounds: int, seed: int, history: int = 0,
                 decision: str = "threshold", reference=None, counterfactual: bool = True,
                 stream: int = EVAL_STREAM, progress: bool = False) -> EpisodeLog:
    """Run ``policy`` in ``episodes`` parallel episodes and log everything the metrics need.

    ``policy.approve_prob(applicants, histories) -> array`` gives P(approve) per applicant; the decision is
    ``P >= 0.5`` (``decision="threshold"``) or ``u < P`` with a seeded uniform ``u`` per (episode, round)
    (``"sample"``; the counterfactual uses the same ``u``). The counterfactual applicant (group swapped, same
    history) is scored in the same batch as the factual one. ``reference`` (a policy) is asked for its
    decision on the same applicant and state, for the agreement metric.
    """
    if decision not in ("threshold", "sample"):
        raise ValueError(f"decision must be 'threshold' or 'sample', got {decision!r}")
    env = LendingEnv(cfg, episodes, rounds, seed, stream)
    G = len(cfg.groups)
    shape = (episodes, rounds)
    log = {k: np.zeros(shape, dtype=bool) for k in ("would_repay", "approved", "approved_cf", "reference")}
    log.update(group=np.zeros(shape, np.int64), score=np.zeros(shape, np.int64), approve_prob=np.zeros(shape), profit=np.zeros(shape))
    mean_score = np.zeros((episodes, rounds + 1, G))
    mean_score[:, 0] = env.group_mean_scores()
    try:
        from tqdm import tqdm

        it = tqdm(range(rounds), desc="decisions", disable=not progress, leave=False)
    except ImportError:  # pragma: no cover
        it = range(rounds)
    for t in it:
        a = env.applicants()
        hist = env.recent(history)
        if counterfactual:
            p_all = np.asarray(policy.approve_prob(Applicants.concat([a, a.swapped(G)]), hist + hist), dtype=np.float64)
            p, p_cf = p_all[:episodes], p_all[episodes:]
        else:
            p = np.asarray(policy.approve_prob(a, hist), dtype=np.float64)
            p_cf = p
        u = env.u_decide[:, t] if decision == "sample" else 0.5
        cmp = (lambda q: u < q) if decision == "sample" else (lambda q: q >= 0.5)
        d, d_cf = cmp(p), cmp(p_cf)
        if reference is not None:
            log["reference"][:, t] = np.asarray(reference.approve_prob(a, hist)) >= 0.5
        log["group"][:, t], log["score"][:, t], log["would_repay"][:, t] = a.group, a.score, a.would_repay
        log["approve_prob"][:, t], log["approved"][:, t], log["approved_cf"][:, t] = p, d, d_cf
        log["profit"][:, t] = env.step(d)
        mean_score[:, t + 1] = env.group_mean_scores()
    return EpisodeLog(groups=list(cfg.groups), mean_score=mean_score, **log)
