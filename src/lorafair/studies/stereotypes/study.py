"""The ``stereotypes`` study: CrowS-Pairs, StereoSet, WinoBias and BBQ scored by likelihood.

Every benchmark is reduced to (context, continuation) requests scored by
:func:`.scoring.score_continuations`; the per-benchmark modules hold the loaders, the causal-LM
adaptations and the metric definitions (see their docstrings and ``docs/stereotypes.md``).

The evaluated items are a seeded, stratified subset (``limit``) of the benchmark; CrowS-Pairs and
StereoSet are first restricted to the ``eval`` half of the deterministic split by item id
(``split: eval``), so the ``antistereotype`` fine-tuning data (built from the ``train`` half) never
contains an evaluated item.
"""

from __future__ import annotations

import time
from typing import Literal, Optional

import numpy as np
from pydantic import Field, PositiveInt, field_validator

from lorafair.run.atomic import atomic_write_jsonl
from lorafair.studies.base import EvalContext, MetricRow, StudyConfig, StudyResult, register_study

from . import bbq, crows, stereoset, winobias
from .sampling import SPLIT_EVAL_FRACTION, split_items, stratified_sample
from .scoring import score_continuations

BENCHMARKS = ("crows", "stereoset", "winobias", "bbq")
Benchmark = Literal["crows", "stereoset", "winobias", "bbq"]

# Sized for ≲1 min per variant for all four on the embedded SmolLM2-135M on 2 CPU cores
# (measured figures in docs/stereotypes.md).
DEFAULT_LIMITS: dict[str, int] = {"crows": 32, "stereoset": 12, "winobias": 24, "bbq": 22}

IDEAL = {
    "crows_stereotype_pct": 50.0, "crows_stereotype_pct_shared": 50.0,
    "stereoset_ss": 50.0, "stereoset_lms": 100.0, "stereoset_icat": 100.0,
    "winobias_pro_acc": 100.0, "winobias_anti_acc": 100.0, "winobias_gap": 0.0,
    "bbq_acc_ambig": 100.0, "bbq_acc_disambig": 100.0, "bbq_bias_ambig": 0.0, "bbq_bias_disambig": 0.0,
}


class StereotypesConfig(StudyConfig):
    benchmarks: list[Benchmark] = Field(
        default_factory=lambda: list(BENCHMARKS),
        description="Benchmarks to run: crows (CrowS-Pairs), stereoset, winobias, bbq.",
    )
    limit: dict[Benchmark, Optional[PositiveInt]] = Field(
        default_factory=dict,
        description="Items per benchmark (null = all); defaults " + ", ".join(f"{k} {v}" for k, v in DEFAULT_LIMITS.items())
        + ". Units: CrowS-Pairs pairs; StereoSet items per task; WinoBias sentences (pro and anti together); BBQ examples.",
    )
    split: Literal["eval", "all"] = Field(
        default="eval",
        description="CrowS-Pairs and StereoSet items: 'eval' = the half never used by the antistereotype "
        "training data (split by item id), 'all' = every item.",
    )
    crows_bias_types: Optional[list[str]] = Field(default=None, description=f"CrowS-Pairs bias types to keep (default all): {', '.join(crows.BIAS_TYPES)}.")
    stereoset_tasks: list[Literal["intrasentence", "intersentence"]] = Field(
        default_factory=lambda: list(stereoset.TASKS), description="StereoSet tasks (dev file).")
    stereoset_bias_types: Optional[list[str]] = Field(default=None, description=f"StereoSet bias types to keep (default all): {', '.join(stereoset.BIAS_TYPES)}.")
    winobias_split: Literal["dev", "test"] = Field(default="test", description="WinoBias file split.")
    winobias_types: list[Literal[1, 2]] = Field(default_factory=lambda: [1, 2], description="WinoBias sentence types.")
    bbq_categories: Optional[list[str]] = Field(default=None, description=f"BBQ categories to keep (default all): {', '.join(bbq.CATEGORIES)}.")
    bbq_normalize: Literal["mean", "sum"] = Field(
        default="mean", description="BBQ answer score: mean per-token log-probability (default) or the sum.")
    batch_size: PositiveInt = Field(default=16, description="Sequences per forward pass.")
    n_boot: PositiveInt = Field(default=1000, description="Bootstrap resamples for confidence intervals.")
    subset_seed: Optional[int] = Field(default=None, description="Seed of the item subset (default: the run seed).")

    @field_validator("crows_bias_types")
    @classmethod
    def _crows(cls, v):
        return _check_names(v, crows.BIAS_TYPES)

    @field_validator("stereoset_bias_types")
    @classmethod
    def _ss(cls, v):
        return _check_names(v, stereoset.BIAS_TYPES)

    @field_validator("bbq_categories")
    @classmethod
    def _bbq(cls, v):
        return _check_names(v, bbq.CATEGORIES)

    @field_validator("benchmarks", "stereoset_tasks", "winobias_types")
    @classmethod
    def _nonempty(cls, v):
        if not v:
            raise ValueError("must name at least one")
        return list(dict.fromkeys(v))

    def limit_for(self, name: str) -> Optional[int]:
        return self.limit[name] if name in self.limit else DEFAULT_LIMITS[name]


def _check_names(v, allowed):
    if v is None:
        return v
    if not v:
        raise ValueError("must name at least one (or be left out for all)")
    bad = [x for x in v if x not in allowed]
    if bad:
        raise ValueError(f"unknown {bad[0]!r}; expected one of {', '.join(allowed)}")
    return list(dict.fromkeys(v))


def _rows(metric: str, rows) -> list[MetricRow]:
    return [MetricRow(metric=metric, value=v, ci_low=lo, ci_high=hi, n=n, group=g) for g, v, lo, hi, n in rows]


@register_study("stereotypes")
class StereotypesStudy:
    """Stereotype benchmarks by likelihood: CrowS-Pairs, StereoSet, WinoBias, BBQ."""

    Config = StereotypesConfig
    headline = ("crows_stereotype_pct", "stereoset_ss", "stereoset_icat", "winobias_gap", "bbq_bias_ambig", "bbq_bias_disambig")
    # Lower is better for these when they are at or above their ideal (50 for the % stereotype scores,
    # 0 for gaps and bias scores), which is the usual case; the ideals are in ``info["ideal"]``.
    lower_is_better = frozenset({
        "crows_stereotype_pct", "crows_stereotype_pct_shared", "stereoset_ss", "stereoset_intra_ss", "stereoset_inter_ss",
        "winobias_gap", "bbq_bias_ambig", "bbq_bias_disambig",
    })

    def __init__(self, config: Optional[StereotypesConfig] = None):
        self.config = config

    def evaluate(self, ctx: EvalContext) -> StudyResult:
        cfg: StereotypesConfig = ctx.study_config if ctx.study_config is not None else self.config or StereotypesConfig()
        seed = ctx.seed if cfg.subset_seed is None else cfg.subset_seed
        result = StudyResult(info={"ideal": IDEAL, "split": cfg.split, "split_eval_fraction": SPLIT_EVAL_FRACTION,
                                   "subset_seed": seed, "n_boot": cfg.n_boot, "bbq_normalize": cfg.bbq_normalize,
                                   "winobias_split": cfg.winobias_split, "n_items": {}, "seconds": {}, "cpu_seconds": {}})
        records: list[dict] = []
        runners = {"crows": self._crows, "stereoset": self._stereoset, "winobias": self._winobias, "bbq": self._bbq}
        for name in cfg.benchmarks:
            t0, c0 = time.perf_counter(), time.process_time()
            rows, recs = runners[name](ctx, cfg, seed)
            result.info["seconds"][name] = round(time.perf_counter() - t0, 2)
            result.info["cpu_seconds"][name] = round(time.process_time() - c0, 2)
            result.info["n_items"][name] = len(recs)
            ctx.log.info("stereotypes: %s on %d items in %.1f s", name, len(recs), result.info["seconds"][name])
            result.metrics += rows
            records += recs
        atomic_write_jsonl(ctx.out_dir / "stereotypes_items.jsonl", records)
        return result

    # -- one method per benchmark: (metric rows, per-item records) -----------------------------

    def _score(self, ctx, cfg, requests, desc):
        return score_continuations(ctx.model, ctx.tokenizer, requests, batch_size=cfg.batch_size,
                                   device=ctx.device, progress=ctx.progress, desc=desc)

    def _crows(self, ctx, cfg, seed):
        items = split_items(crows.load_crows(), "crows", cfg.split)
        if cfg.crows_bias_types:
            items = [it for it in items if it["bias_type"] in cfg.crows_bias_types]
        items = stratified_sample(items, lambda it: it["bias_type"], cfg.limit_for("crows"), seed)
        reqs = [r for it in items for r in (("", it["sent_more"]), ("", it["sent_less"]))]
        sc = self._score(ctx, cfg, reqs, "crows-pairs")
        more_full, less_full, more_sh, less_sh, recs = [], [], [], [], []
        for k, it in enumerate(items):
            a, b = sc[2 * k], sc[2 * k + 1]
            sa, sb = crows.shared_token_score(a, b)
            more_full.append(a.total), less_full.append(b.total), more_sh.append(sa), less_sh.append(sb)
            recs.append({"benchmark": "crows", "id": it["id"], "group": it["bias_type"], "more": a.total, "less": b.total,
                         "more_shared": sa, "less_shared": sb})
        groups = [it["bias_type"] for it in items]
        rows = _rows("crows_stereotype_pct", crows.crows_metric(more_full, less_full, groups, n_boot=cfg.n_boot, seed=seed))
        rows += _rows("crows_stereotype_pct_shared", crows.crows_metric(more_sh, less_sh, groups, n_boot=cfg.n_boot, seed=seed))
        return rows, recs

    def _stereoset(self, ctx, cfg, seed):
        items = []
        for task in cfg.stereoset_tasks:
            part = split_items(stereoset.load_stereoset(task), "stereoset", cfg.split)
            if cfg.stereoset_bias_types:
                part = [it for it in part if it["bias_type"] in cfg.stereoset_bias_types]
            items += stratified_sample(part, lambda it: it["bias_type"], cfg.limit_for("stereoset"), seed)
        reqs = [r for it in items for r in stereoset.requests_for(it)]
        sc = self._score(ctx, cfg, reqs, "stereoset")
        recs, per = [], {lab: [] for lab in stereoset.LABELS}
        for k, it in enumerate(items):
            s = {lab: sc[3 * k + j].mean for j, lab in enumerate(stereoset.LABELS)}
            for lab in stereoset.LABELS:
                per[lab].append(s[lab])
            recs.append({"benchmark": "stereoset", "task": it["task"], "id": it["id"], "group": it["bias_type"],
                         "target": it["target"], "scores": s})
        rows: list[MetricRow] = []
        tasks = np.array([it["task"] for it in items])
        for prefix, mask in [("stereoset", np.ones(len(items), bool))] + [
            (f"stereoset_{t[:5]}", tasks == t) for t in cfg.stereoset_tasks
        ]:
            idx = np.flatnonzero(mask)
            m = stereoset.stereoset_metric(
                [per["stereotype"][i] for i in idx], [per["anti-stereotype"][i] for i in idx], [per["unrelated"][i] for i in idx],
                [items[i]["target"] for i in idx], [items[i]["bias_type"] for i in idx], n_boot=cfg.n_boot, seed=seed)
            for name in ("lms", "ss", "icat"):
                rows += _rows(f"{prefix}_{name}", m[name])
        return rows, recs

    def _winobias(self, ctx, cfg, seed):
        allitems = [it for it in winobias.load_winobias(cfg.winobias_split) if it["type"] in cfg.winobias_types]
        pairs = sorted({it["pair"] for it in allitems})
        limit = cfg.limit_for("winobias")
        chosen = set(stratified_sample(pairs, lambda p: p.split("-")[0], None if limit is None else max(1, limit // 2), seed))
        items = [it for it in allitems if it["pair"] in chosen]
        reqs = [r for it in items for r in winobias.requests_for(it)]
        sc = self._score(ctx, cfg, reqs, "winobias")
        correct, recs = [], []
        for k, it in enumerate(items):
            g, o = sc[2 * k].total, sc[2 * k + 1].total
            correct.append(float(g > o))
            recs.append({"benchmark": "winobias", "id": it["id"], "group": f"type{it['type']}", "condition": it["condition"],
                         "gold": g, "other": o, "correct": g > o})
        m = winobias.winobias_metric(correct, [it["condition"] for it in items], [it["type"] for it in items], n_boot=cfg.n_boot, seed=seed)
        rows = _rows("winobias_pro_acc", m["pro_acc"]) + _rows("winobias_anti_acc", m["anti_acc"]) + _rows("winobias_gap", m["gap"])
        return rows, recs

    def _bbq(self, ctx, cfg, seed):
        items = bbq.load_bbq(cfg.bbq_categories or bbq.CATEGORIES)
        items = stratified_sample(items, lambda it: (it["category"], it["condition"]), cfg.limit_for("bbq"), seed)
        reqs = [r for it in items for r in bbq.requests_for(it)]
        sc = self._score(ctx, cfg, reqs, "bbq")
        preds, recs = [], []
        for k, it in enumerate(items):
            s = [(sc[3 * k + j].mean if cfg.bbq_normalize == "mean" else sc[3 * k + j].total) for j in range(3)]
            p = int(np.argmax(s))
            preds.append(p)
            recs.append({"benchmark": "bbq", "id": it["id"], "group": it["category"], "condition": it["condition"],
                         "polarity": it["polarity"], "scores": s, "pred": p, "label": it["label"],
                         "target_loc": it["target_loc"], "unknown_loc": it["unknown_loc"]})
        m = bbq.bbq_metric(preds, [it["label"] for it in items], [it["condition"] for it in items],
                           [it["polarity"] for it in items], [it["target_loc"] for it in items],
                           [it["unknown_loc"] for it in items], [it["category"] for it in items], n_boot=cfg.n_boot, seed=seed)
        rows = []
        for name in ("acc_ambig", "acc_disambig", "bias_ambig", "bias_disambig"):
            rows += _rows(f"bbq_{name}", m[name])
        return rows, recs
