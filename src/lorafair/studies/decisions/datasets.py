"""The ``lending-policy`` dataset: a reference policy's decisions as prompt -> completion pairs (shift data).

The policy plays ``ceil(n / rounds)`` episodes of the simulation (random stream ``TRAIN_STREAM``, so they
differ from the evaluation episodes of the same seed); every round gives one record whose prompt is the
applicant with the episode's last ``history`` decisions of that policy (as :mod:`render` writes them for
evaluation) and whose completion is ``" approve"`` or ``" deny"``. Use the same ``history``,
``include_group``, ``rounds`` and ``sim`` as the ``decisions`` study so that training and evaluation
prompts have the same form (a YAML anchor in the recipe does it).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lorafair.data.registry import DataContext, DataSpec, register_dataset
from lorafair.errors import UserError
from lorafair.studies.decisions.policies import build_policy
from lorafair.studies.decisions.render import ANSWERS, render_prompts
from lorafair.studies.decisions.simulator import TRAIN_STREAM, LendingEnv, SimConfig


class LendingDataOptions(BaseModel):
    """``options`` of the ``lending-policy`` dataset."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["max_profit", "biased", "demographic_parity", "equal_opportunity"] = Field(
        default="equal_opportunity", description="The reference policy whose decisions are the completions.")
    n: int = Field(default=2000, gt=0, description="Number of records (decisions).")
    history: int = Field(default=1, ge=0, description="Past decisions of the episode shown in each prompt.")
    include_group: bool = Field(default=True, description="Show the applicant's group in the prompt.")
    rounds: int = Field(default=10, gt=0, description="Rounds per episode (as the study's `rounds`).")
    sim: SimConfig = Field(default_factory=SimConfig, description="Simulation parameters (as the study's `sim`).")


def parse_options(spec: DataSpec, ctx: DataContext) -> LendingDataOptions:
    try:
        return LendingDataOptions.model_validate(spec.options or {})
    except ValidationError as e:
        raise UserError.from_validation(e, prefix=f"{ctx.field_name}.options") from None


def policy_records(opts: LendingDataOptions, seed: int) -> list[dict]:
    """The records of the module docstring, episode by episode, round by round."""
    cfg = opts.sim
    policy = build_policy(opts.policy, cfg, field="options.policy")
    episodes = math.ceil(opts.n / opts.rounds)
    env = LendingEnv(cfg, episodes, opts.rounds, seed, stream=TRAIN_STREAM)
    rows: list[list[dict]] = [[] for _ in range(episodes)]
    for t in range(opts.rounds):
        a = env.applicants()
        hist = env.recent(opts.history)
        prompts = render_prompts(a, hist, cfg.groups, opts.include_group)
        approved = policy.approve_prob(a, hist) >= 0.5
        for e in range(episodes):
            rows[e].append({
                "prompt": prompts[e],
                "completion": ANSWERS[0] if approved[e] else ANSWERS[1],
                "group": cfg.groups[int(a.group[e])],
                "score": int(a.score[e]),
                "would_repay": bool(a.would_repay[e]),
                "episode": e,
                "round": t,
                "policy": opts.policy,
            })
        env.step(approved)
    return [r for ep in rows for r in ep][: opts.n]


@register_dataset("lending-policy", help="a reference lending policy's decisions as prompt -> ' approve'/' deny' "
                  "(options: policy, n, history, include_group, rounds, sim)")
def build_lending_policy(spec: DataSpec, ctx: DataContext) -> list[dict]:
    return policy_records(parse_options(spec, ctx), ctx.seed)
