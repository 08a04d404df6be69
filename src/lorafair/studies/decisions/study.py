"""The ``decisions`` study: the language model as a lender in a multi-round simulation with delayed impact.

For each variant: ``episodes`` parallel episodes of ``rounds`` rounds (:mod:`simulator`), the model
deciding from its probabilities of " approve" / " deny" (:mod:`lm_policy`); metrics of :mod:`metrics`
with bootstrap intervals over episodes; per-round curves in ``decisions_trajectory.json``.

``finalize`` evaluates the reference policies (:mod:`policies`) with the same code, seeds and episodes,
writes them to ``RUN/decisions_reference.json`` and returns them as metrics rows with variant
``policy:<name>`` (method ``policy``, rank empty) so the report can place every variant against them.

Metric roles (``metric_specs``): ``approval_gap`` and ``tpr_gap`` are targets (lower, ideal 0), ``profit`` a
guard (higher is better), the rest diagnostics. Per-item values (``StudyResult.items["episodes"]``,
:func:`.metrics.episode_items`): one item per episode, the unit of the bootstrap; every variant of a seed
plays the same episodes (common random numbers), so the paired comparison resamples episodes. Gaps and
flip rates are undefined (NaN, ``note``) when every decision is the same (:mod:`.metrics`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from lorafair.atomic import atomic_write_json
from lorafair.studies.base import EvalContext, MetricRow, MetricSpec, StudyConfig, StudyResult, register_study
from lorafair.studies.decisions.lm_policy import LMPolicy
from lorafair.studies.decisions.metrics import STATS, compute_metrics, episode_items, metrics_from_items, trajectory
from lorafair.studies.decisions.policies import POLICIES, build_policy
from lorafair.studies.decisions.render import ANSWERS
from lorafair.studies.decisions.simulator import SimConfig, run_episodes

PolicyName = Literal["max_profit", "biased", "demographic_parity", "equal_opportunity"]
TRAJECTORY_FILE = "decisions_trajectory.json"
REFERENCE_FILE = "decisions_reference.json"


@register_study("decisions")
class DecisionsStudy:
    """Multi-round lending with delayed impact: approval/TPR gaps, profit, score trajectories, flips."""

    # eval.precision auto keeps fp32: on the trained lenders of lending-controlled bf16 changed no decision but saved
    # no time either (docs/performance.md); eval.precision: bf16 opts in

    class Config(StudyConfig):
        sim: SimConfig = Field(default_factory=SimConfig, description="Simulation parameters (groups, score distributions, repayment curve, score dynamics).")
        episodes: int = Field(default=16, gt=0, description="Parallel episodes per variant (the unit of the bootstrap).")
        rounds: int = Field(default=10, gt=0, description="Decisions per episode.")
        history: int = Field(default=1, ge=0, description="Past decisions and outcomes of the episode shown in each prompt.")
        include_group: bool = Field(default=True, description="Show the applicant's group in the prompt.")
        decision: Literal["threshold", "sample"] = Field(
            default="threshold", description="'threshold': approve iff P(approve) >= 0.5; 'sample': approve with probability P(approve) (seeded).")
        reference_policy: PolicyName = Field(default="equal_opportunity", description="The policy the fine-tuning data imitates (for `agreement`).")
        reference_policies: list[PolicyName] = Field(
            default_factory=lambda: list(POLICIES), description="Reference policies evaluated for comparison (rows 'policy:<name>').")
        counterfactual: bool = Field(default=True, description="Also score each applicant with the group changed (flip rate); doubles the model calls.")
        batch_size: int = Field(default=32, gt=0, description="Prompts per forward pass.")
        n_boot: int = Field(default=1000, ge=100, description="Bootstrap resamples (over episodes) for intervals.")

    headline = ("approval_gap", "tpr_gap", "final_score_gap", "profit")
    metric_specs = (
        MetricSpec("approval_gap", "target", "lower", ideal=0.0, unit="episodes", stat=STATS["approval_gap"],
                   doc="max - min over groups of the approval rate (demographic parity); undefined when decisions are constant"),
        MetricSpec("tpr_gap", "target", "lower", ideal=0.0, unit="episodes", stat=STATS["tpr_gap"],
                   doc="max - min over groups of the approval rate of applicants who would repay (equal opportunity); "
                       "undefined when decisions are constant"),
        MetricSpec("profit", "guard", "higher", unit="episodes", stat=STATS["profit"],
                   doc="lender's mean profit per applicant (thousands): the lending must not get worse"),
        MetricSpec("fpr_gap", "diagnostic", "lower", ideal=0.0, unit="episodes", stat=STATS["fpr_gap"]),
        MetricSpec("final_score_gap", "diagnostic", "lower", ideal=0.0, unit="episodes", stat=STATS["final_score_gap"],
                   doc="max - min of the groups' mean scores at the end of the episode (delayed impact)"),
        MetricSpec("approval_rate", "diagnostic", "none", unit="episodes", stat=STATS["approval_rate"]),
        MetricSpec("flip_rate", "diagnostic", "lower", ideal=0.0, unit="episodes", stat=STATS["flip_rate"],
                   doc="share of decisions that change with only the group; undefined when every decision is the same"),
        MetricSpec("agreement", "diagnostic", "higher", unit="episodes", stat=STATS["agreement"],
                   doc="share of decisions equal to the reference policy's"),
        MetricSpec("score_change", "diagnostic", "none", doc="per group: mean score at the end - at the start"),
    )

    def evaluate(self, ctx: EvalContext) -> StudyResult:
        cfg: DecisionsStudy.Config = ctx.study_config
        t0 = time.perf_counter()
        policy = LMPolicy(ctx.model, ctx.tokenizer, cfg.sim.groups, include_group=cfg.include_group,
                          batch_size=cfg.batch_size, device=ctx.device)
        reference = build_policy(cfg.reference_policy, cfg.sim, field="studies.decisions.reference_policy")
        log = run_episodes(policy, cfg.sim, episodes=cfg.episodes, rounds=cfg.rounds, seed=ctx.seed, history=cfg.history,
                           decision=cfg.decision, reference=reference, counterfactual=cfg.counterfactual, progress=ctx.progress)
        items = episode_items(log)
        rows = metrics_from_items(items.columns, n_boot=cfg.n_boot, seed=ctx.seed)
        if not cfg.counterfactual:
            rows = [r for r in rows if r.metric != "flip_rate"]
        atomic_write_json(Path(ctx.out_dir) / TRAJECTORY_FILE, trajectory(log))
        mass = policy.answer_mass
        info = {
            "episodes": cfg.episodes, "rounds": cfg.rounds, "history": cfg.history, "decision": cfg.decision,
            "include_group": cfg.include_group, "seed": ctx.seed, "reference_policy": cfg.reference_policy,
            "reference_thresholds": reference.describe(cfg.sim), "answers": list(ANSWERS),
            "answers_single_token": policy.single_token,
            "answer_mass_mean": float(np.mean(mass)) if mass else None,
            "mean_approve_prob": float(log.approve_prob.mean()),
            "bootstrap": f"percentile, {cfg.n_boot} resamples of episodes",
            "constant_decisions": bool(log.approved.all() or not log.approved.any()),
            "wall_s": round(time.perf_counter() - t0, 2),
        }
        return StudyResult(metrics=rows, info=info, items={"episodes": items})

    @staticmethod
    def finalize(run_dir, config, metrics_rows=None) -> list[dict[str, Any]]:
        """Evaluate the reference policies for every seed of the run; write ``RUN/decisions_reference.json``
        and return their metrics rows (variant ``policy:<name>``)."""
        studies = config.studies if hasattr(config, "studies") else config["studies"]
        cfg = studies["decisions"]
        if not isinstance(cfg, DecisionsStudy.Config):
            cfg = DecisionsStudy.Config.model_validate(cfg or {})
        seeds = list(config.seeds if hasattr(config, "seeds") else config.get("seeds", [0]))
        out = reference_results(cfg, seeds)
        atomic_write_json(Path(run_dir) / REFERENCE_FILE, out)
        return out["rows"]


def reference_results(cfg: "DecisionsStudy.Config", seeds: list[int]) -> dict[str, Any]:
    """Metrics rows, thresholds and trajectories of ``cfg.reference_policies`` over ``seeds`` (same
    episodes as the variants: same seed, same random stream)."""
    agree_with = build_policy(cfg.reference_policy, cfg.sim, field="studies.decisions.reference_policy")
    rows, thresholds, trajectories = [], {}, {}
    for name in cfg.reference_policies:
        pol = build_policy(name, cfg.sim)
        thresholds[name] = pol.describe(cfg.sim)
        for seed in seeds:
            log = run_episodes(pol, cfg.sim, episodes=cfg.episodes, rounds=cfg.rounds, seed=seed, history=cfg.history,
                               decision="threshold", reference=agree_with, counterfactual=True)
            for r in compute_metrics(log, n_boot=cfg.n_boot, seed=seed):
                rows.append(metric_row_dict(r, f"policy:{name}", seed))
            trajectories.setdefault(name, {})[str(seed)] = trajectory(log)
    return {"rows": rows, "thresholds": thresholds, "trajectories": trajectories,
            "reference_policy": cfg.reference_policy, "episodes": cfg.episodes, "rounds": cfg.rounds}


def metric_row_dict(r: MetricRow, variant: str, seed: int) -> dict[str, Any]:
    """A metrics.csv row (variant,method,rank,seed,study,metric,group,value,ci_low,ci_high,n,note)."""
    nan = lambda v: None if v is None or not np.isfinite(v) else float(v)  # noqa: E731
    return {"variant": variant, "method": "policy", "rank": None, "seed": seed, "study": "decisions",
            "metric": r.metric, "group": r.group, "value": nan(r.value), "ci_low": nan(r.ci_low),
            "ci_high": nan(r.ci_high), "n": r.n, "note": r.note}
