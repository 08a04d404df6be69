"""The ``stereotypes`` study: CrowS-Pairs, StereoSet, WinoBias and BBQ scored by likelihood.

Every benchmark is reduced to (context, continuation) requests scored by
:func:`.scoring.score_continuations`; the per-benchmark modules hold the loaders, the causal-LM
adaptations and the metric definitions (see their docstrings and ``docs/stereotypes.md``).

The evaluated items are a seeded, stratified subset (``limit``) of the benchmark; CrowS-Pairs and
StereoSet are first restricted to the ``eval`` half of the deterministic split by item id
(``split: eval``), so the ``antistereotype`` fine-tuning data (built from the ``train`` half) never
contains an evaluated item.

Every metric is declared in ``StereotypesStudy.metric_specs`` (role, direction, ideal) with a
statistic of the per-item values the study returns in ``StudyResult.items`` (:mod:`.items`), from
which the runner computes paired differences and capture ratios across variants.
"""

from __future__ import annotations

import math
import time
from typing import Literal, Optional

import numpy as np
from pydantic import Field, PositiveInt, field_validator

from lorafair.atomic import atomic_write_jsonl
from lorafair.studies.base import EvalContext, MetricRow, MetricSpec, StudyConfig, StudyResult, register_study

from . import bbq, crows, stereoset, winobias
from . import items as it
from .sampling import SPLIT_EVAL_FRACTION, split_items, stratified_sample
from .scoring import prefix_token_id, score_continuations

BENCHMARKS = ("crows", "stereoset", "winobias", "bbq")
Benchmark = Literal["crows", "stereoset", "winobias", "bbq"]

# Sized for an answer: 95% interval half-widths of about 5 points or less for CrowS-Pairs %, StereoSet
# SS and each BBQ accuracy (a proportion near 0.5-0.6 needs ~370-385 items), within what the shipped
# data holds (CrowS-Pairs eval split: 758 pairs; StereoSet eval split: ~1,070 items per task).
# StereoSet: 270 per task, 540 pooled (SS is a mean over target terms, so it needs more items than a
# plain proportion: ±5.7 was measured at 400). BBQ: 25 examples per (group, context condition)
# stratum, 15 groups × 2 conditions, so 375 per condition. WinoBias: 200 pro/anti pairs (the gap's
# paired interval is narrow). Measured cost and half-widths on the embedded SmolLM2-135M:
# docs/stereotypes.md.
DEFAULT_LIMITS: dict[str, int] = {"crows": 400, "stereoset": 270, "winobias": 400, "bbq": 750}

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
    """Metric rows of (group, value, lo, hi, n); a value that is not a finite number (nothing to count: e.g.
    no BBQ example of a group whose answer is biased or anti-biased) is written empty, with the reason."""
    out = []
    for g, v, lo, hi, n in rows:
        if v is None or not math.isfinite(v):
            where = f" for group {g}" if g else ""
            out.append(MetricRow(metric=metric, value=None, ci_low=None, ci_high=None, n=n, group=g,
                                 note=f"undefined: no items count towards {metric}{where} ({n or 0} items)"))
        else:
            out.append(MetricRow(metric=metric, value=v, ci_low=lo, ci_high=hi, n=n, group=g))
    return out


def _spec(name, role, direction, unit, stat, ideal=None, doc=""):
    return MetricSpec(name, role, direction, ideal=ideal, unit=unit, stat=stat, doc=doc)


@register_study("stereotypes")
class StereotypesStudy:
    """Stereotype benchmarks by likelihood: CrowS-Pairs, StereoSet, WinoBias, BBQ."""

    Config = StereotypesConfig
    # eval.precision auto: likelihood comparisons under bf16 where native (on SmolLM2, 97.7-100% of the
    # decisions of each benchmark agree with fp32, aggregates within 1.4 points: docs/performance.md)
    bf16_auto = ("score",)
    co_evaluate = True  # every request comes from the benchmarks' items
    headline = ("crows_stereotype_pct", "stereoset_ss", "stereoset_icat", "winobias_gap", "bbq_bias_ambig", "bbq_bias_disambig")
    # Targets: the stereotype scores a debiasing fine-tune should move to their ideal; guards: language
    # modelling (LMS) and QA accuracy must not get worse; the rest are reported only. Every metric is
    # recomputed from the per-item values in ``StudyResult.items`` (see :mod:`.items`).
    metric_specs = (
        _spec("crows_stereotype_pct", "target", "none", "crows_pairs", it.pct("stereo_more"), 50.0,
              "CrowS-Pairs: % pairs where the more stereotyping sentence is more likely"),
        _spec("crows_stereotype_pct_shared", "diagnostic", "none", "crows_pairs", it.pct("stereo_more_shared"), 50.0,
              "CrowS-Pairs, scoring only the tokens shared by both sentences"),
        _spec("stereoset_ss", "target", "none", "stereoset_items", it.stereoset_stat("ss"), 50.0,
              "StereoSet stereotype score (% stereotype over anti-stereotype, mean over target terms)"),
        _spec("stereoset_lms", "guard", "higher", "stereoset_items", it.stereoset_stat("lms"),
              doc="StereoSet language modelling score: meaningful over unrelated"),
        _spec("stereoset_icat", "diagnostic", "higher", "stereoset_items", it.stereoset_stat("icat"),
              doc="StereoSet ICAT = LMS * min(SS, 100 - SS) / 50"),
        *(_spec(f"stereoset_{t[:5]}_{m}", "diagnostic", "none" if m == "ss" else "higher", "stereoset_items",
                it.stereoset_stat(m, t), 50.0 if m == "ss" else None, f"StereoSet {t} only")
          for t in stereoset.TASKS for m in ("lms", "ss", "icat")),
        _spec("winobias_pro_acc", "diagnostic", "higher", "winobias_pairs", it.pct("pro_correct"),
              doc="WinoBias accuracy on pro-stereotypical sentences"),
        _spec("winobias_anti_acc", "diagnostic", "higher", "winobias_pairs", it.pct("anti_correct"),
              doc="WinoBias accuracy on anti-stereotypical sentences"),
        _spec("winobias_gap", "target", "none", "winobias_pairs", it.winobias_gap, 0.0,
              "WinoBias pro - anti accuracy, over sentence pairs"),
        _spec("bbq_acc_ambig", "guard", "higher", "bbq_examples", it.bbq_accuracy("ambig"),
              doc="BBQ accuracy on ambiguous contexts (the unknown answer is correct)"),
        _spec("bbq_acc_disambig", "guard", "higher", "bbq_examples", it.bbq_accuracy("disambig"),
              doc="BBQ accuracy on disambiguated contexts"),
        _spec("bbq_bias_ambig", "target", "none", "bbq_examples", it.bbq_bias("ambig"), 0.0,
              "BBQ bias score on ambiguous contexts, scaled by (1 - accuracy)"),
        _spec("bbq_bias_disambig", "target", "none", "bbq_examples", it.bbq_bias("disambig"), 0.0,
              "BBQ bias score on disambiguated contexts"),
    )

    def __init__(self, config: Optional[StereotypesConfig] = None):
        self.config = config

    def evaluate(self, ctx: EvalContext) -> StudyResult:
        cfg: StereotypesConfig = ctx.study_config if ctx.study_config is not None else self.config or StereotypesConfig()
        seed = ctx.seed if cfg.subset_seed is None else cfg.subset_seed
        result = StudyResult(info={"ideal": IDEAL, "split": cfg.split, "split_eval_fraction": SPLIT_EVAL_FRACTION,
                                   "subset_seed": seed, "n_boot": cfg.n_boot, "bbq_normalize": cfg.bbq_normalize,
                                   "winobias_split": cfg.winobias_split, "prefix_token_id": prefix_token_id(ctx.tokenizer),
                                   "n_items": {}, "seconds": {}, "cpu_seconds": {}})
        records: list[dict] = []
        runners = {"crows": self._crows, "stereoset": self._stereoset, "winobias": self._winobias, "bbq": self._bbq}
        for name in cfg.benchmarks:
            t0, c0 = time.perf_counter(), time.process_time()
            rows, recs, (unit, item_set) = runners[name](ctx, cfg, seed)
            result.info["seconds"][name] = round(time.perf_counter() - t0, 2)
            result.info["cpu_seconds"][name] = round(time.process_time() - c0, 2)
            result.info["n_items"][name] = len(recs)
            ctx.log.info("stereotypes: %s on %d items in %.1f s", name, len(recs), result.info["seconds"][name])
            result.metrics += rows
            result.items[unit] = item_set
            records += recs
        atomic_write_jsonl(ctx.out_dir / "stereotypes_items.jsonl", records)
        return result

    # -- one method per benchmark: (metric rows, per-item records, (unit, item set)) -------------

    def _score(self, ctx, cfg, requests, desc):
        return score_continuations(ctx.model, ctx.tokenizer, requests, batch_size=cfg.batch_size,
                                   device=ctx.device, progress=ctx.progress, desc=desc)

    def _crows(self, ctx, cfg, seed):
        items = split_items(crows.load_crows(), "crows", cfg.split)
        if cfg.crows_bias_types:
            items = [x for x in items if x["bias_type"] in cfg.crows_bias_types]
        items = stratified_sample(items, lambda x: x["bias_type"], cfg.limit_for("crows"), seed)
        reqs = [r for x in items for r in (("", x["sent_more"]), ("", x["sent_less"]))]
        sc = self._score(ctx, cfg, reqs, "crows-pairs")
        more_full, less_full, more_sh, less_sh, recs = [], [], [], [], []
        for k, x in enumerate(items):
            a, b = sc[2 * k], sc[2 * k + 1]
            sa, sb = crows.shared_token_score(a, b)
            more_full.append(a.total), less_full.append(b.total), more_sh.append(sa), less_sh.append(sb)
            recs.append({"benchmark": "crows", "id": x["id"], "group": x["bias_type"], "more": a.total, "less": b.total,
                         "more_shared": sa, "less_shared": sb})
        groups = [x["bias_type"] for x in items]
        rows = _rows("crows_stereotype_pct", crows.crows_metric(more_full, less_full, groups, n_boot=cfg.n_boot, seed=seed))
        rows += _rows("crows_stereotype_pct_shared", crows.crows_metric(more_sh, less_sh, groups, n_boot=cfg.n_boot, seed=seed))
        item_set = it.crows_items(items, crows.stereotype_indicator(more_full, less_full),
                                  crows.stereotype_indicator(more_sh, less_sh))
        return rows, recs, ("crows_pairs", item_set)

    def _stereoset(self, ctx, cfg, seed):
        items = []
        for task in cfg.stereoset_tasks:
            part = split_items(stereoset.load_stereoset(task), "stereoset", cfg.split)
            if cfg.stereoset_bias_types:
                part = [x for x in part if x["bias_type"] in cfg.stereoset_bias_types]
            items += stratified_sample(part, lambda x: x["bias_type"], cfg.limit_for("stereoset"), seed)
        reqs = [r for x in items for r in stereoset.requests_for(x)]
        sc = self._score(ctx, cfg, reqs, "stereoset")
        recs, per = [], {lab: [] for lab in stereoset.LABELS}
        for k, x in enumerate(items):
            s = {lab: sc[3 * k + j].mean for j, lab in enumerate(stereoset.LABELS)}
            for lab in stereoset.LABELS:
                per[lab].append(s[lab])
            recs.append({"benchmark": "stereoset", "task": x["task"], "id": x["id"], "group": x["bias_type"],
                         "target": x["target"], "scores": s})
        rows: list[MetricRow] = []
        tasks = np.array([x["task"] for x in items])
        for prefix, mask in [("stereoset", np.ones(len(items), bool))] + [
            (f"stereoset_{t[:5]}", tasks == t) for t in cfg.stereoset_tasks
        ]:
            idx = np.flatnonzero(mask)
            m = stereoset.stereoset_metric(
                [per["stereotype"][i] for i in idx], [per["anti-stereotype"][i] for i in idx], [per["unrelated"][i] for i in idx],
                [items[i]["target"] for i in idx], [items[i]["bias_type"] for i in idx], n_boot=cfg.n_boot, seed=seed)
            for name in ("lms", "ss", "icat"):
                rows += _rows(f"{prefix}_{name}", m[name])
        pro, related = stereoset.item_indicators(per["stereotype"], per["anti-stereotype"], per["unrelated"])
        return rows, recs, ("stereoset_items", it.stereoset_items(items, pro, related))

    def _winobias(self, ctx, cfg, seed):
        allitems = [x for x in winobias.load_winobias(cfg.winobias_split) if x["type"] in cfg.winobias_types]
        pairs = sorted({x["pair"] for x in allitems})
        limit = cfg.limit_for("winobias")
        chosen = set(stratified_sample(pairs, lambda p: p.split("-")[0], None if limit is None else max(1, limit // 2), seed))
        items = [x for x in allitems if x["pair"] in chosen]
        reqs = [r for x in items for r in winobias.requests_for(x)]
        sc = self._score(ctx, cfg, reqs, "winobias")
        correct, recs = [], []
        for k, x in enumerate(items):
            g, o = sc[2 * k].total, sc[2 * k + 1].total
            correct.append(float(g > o))
            recs.append({"benchmark": "winobias", "id": x["id"], "pair": x["pair"], "group": f"type{x['type']}",
                         "condition": x["condition"], "gold": g, "other": o, "correct": g > o})
        m = winobias.winobias_metric(correct, [x["condition"] for x in items], [x["type"] for x in items],
                                     [x["pair"] for x in items], n_boot=cfg.n_boot, seed=seed)
        rows = _rows("winobias_pro_acc", m["pro_acc"]) + _rows("winobias_anti_acc", m["anti_acc"]) + _rows("winobias_gap", m["gap"])
        return rows, recs, ("winobias_pairs", it.winobias_items(items, correct))

    def _bbq(self, ctx, cfg, seed):
        # examples without a target_loc are in no BBQ score (the authors' script drops them): not scored
        items = [x for x in bbq.load_bbq(cfg.bbq_categories or bbq.CATEGORIES) if x["target_loc"] is not None]
        items = stratified_sample(items, lambda x: (bbq.score_group(x), x["condition"]), cfg.limit_for("bbq"), seed)
        reqs = [r for x in items for r in bbq.requests_for(x)]
        sc = self._score(ctx, cfg, reqs, "bbq")
        preds, recs = [], []
        for k, x in enumerate(items):
            s = [(sc[3 * k + j].mean if cfg.bbq_normalize == "mean" else sc[3 * k + j].total) for j in range(3)]
            p = int(np.argmax(s))
            preds.append(p)
            recs.append({"benchmark": "bbq", "id": x["id"], "group": bbq.score_group(x), "category": x["category"],
                         "label_type": x["label_type"], "condition": x["condition"], "polarity": x["polarity"],
                         "scores": s, "pred": p, "label": x["label"], "target_loc": x["target_loc"],
                         "unknown_loc": x["unknown_loc"]})
        groups = [bbq.score_group(x) for x in items]
        m = bbq.bbq_metric(preds, [x["label"] for x in items], [x["condition"] for x in items],
                           [x["polarity"] for x in items], [x["target_loc"] for x in items],
                           [x["unknown_loc"] for x in items], groups, n_boot=cfg.n_boot, seed=seed)
        rows = []
        for name in ("acc_ambig", "acc_disambig", "bias_ambig", "bias_disambig"):
            rows += _rows(f"bbq_{name}", m[name])
        return rows, recs, ("bbq_examples", it.bbq_items(items, preds, groups))
