"""The ``lmeval`` study: any lm-evaluation-harness task on every variant.

It runs lm-eval's Python API (``lm_eval.simple_evaluate``) on the model object lorafair already holds for the
variant (``HFLM(pretrained=<model>, tokenizer=<tokenizer>)``: no reload per variant, adapters included), for
tasks given by name or as a local task YAML (``include_path``: a folder of task YAMLs with local data, which
is how it runs offline). Each task metric becomes a row ``<task>.<metric>`` (``.<filter>`` appended for a filter
other than ``none``) with lm-eval's standard error as a normal 95% interval, and lm-eval's per-sample results
(``log_samples``) are kept as the study's item set, one per task, so the runner computes paired ``delta_`` and
``capture_`` rows over the same documents for every variant. A metric's direction is lm-eval's
``higher_is_better``; its role is ``target`` unless ``roles`` says otherwise; a metric whose aggregation is not a
mean over documents (corpus BLEU, perplexity …) is ``diagnostic`` (its paired statistic would not be lm-eval's).

lm-eval is an optional extra: ``pip install 'lorafair[lmeval]'``. Without it the study is refused at
config validation, before any work, with one line saying what to install.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from typing import Literal, Optional

from pydantic import Field, model_validator

from lorafair.errors import UserError
from lorafair.stats.paired import mean
from lorafair.studies.base import EvalContext, ItemSet, MetricRow, MetricSpec, StudyConfig, StudyResult, register_study

INSTALL = "pip install 'lorafair[lmeval]' (or pip install 'lm-eval>=0.4.5,<0.5')"
Z95 = 1.959963984540054


def lm_eval_installed() -> bool:
    try:
        return importlib.util.find_spec("lm_eval") is not None
    except (ImportError, ValueError):
        return False


def require_lm_eval() -> None:
    if not lm_eval_installed():
        raise UserError("studies.lmeval", None, message=f"studies.lmeval: needs lm-evaluation-harness, which is not "
                        f"installed: {INSTALL}")


class LMEvalConfig(StudyConfig):
    tasks: list[str] = Field(min_length=1, description="lm-eval task names (e.g. crows_pairs_english), or names of "
                             "tasks defined by the YAML files in include_path.")
    include_path: Optional[str] = Field(default=None, description="A folder of lm-eval task YAMLs (local tasks on "
                                        "local data: how the study runs offline).")
    num_fewshot: Optional[int] = Field(default=None, ge=0, description="Few-shot examples (default: the task's own).")
    limit: Optional[int] = Field(default=None, gt=0, description="Documents per task (lm-eval's limit: the first N).")
    batch_size: int = Field(default=16, gt=0, description="lm-eval's batch size.")
    roles: dict[str, Literal["target", "guard", "diagnostic"]] = Field(
        default_factory=dict, description="Role of a metric, by its row name <task>.<metric> (default: target; "
        "metrics that are not means over documents are always diagnostic).")
    n_boot: int = Field(default=1000, ge=100, description="Bootstrap resamples of lm-eval's stderr for non-mean "
                        "metrics (bootstrap_iters) and of the runner's paired rows.")

    @model_validator(mode="after")
    def _installed(self):
        require_lm_eval()
        return self


def _task_manager(include_path: Optional[str]):
    from lm_eval.tasks import TaskManager

    if include_path is not None:
        from pathlib import Path

        if not Path(include_path).expanduser().is_dir():
            raise UserError("studies.lmeval.include_path", include_path, "a folder of lm-eval task YAML files")
        return TaskManager(include_path=str(Path(include_path).expanduser()))
    return TaskManager()


@lru_cache(maxsize=8)
def _task_metrics(tasks: tuple[str, ...], include_path: Optional[str]) -> tuple[tuple[str, str, Optional[bool], bool], ...]:
    """(task, metric, higher_is_better, aggregated by the mean) of every leaf task's metrics."""
    import warnings

    from lm_eval.api.metrics import mean as lm_mean
    from lm_eval.tasks import get_task_dict

    tm = _task_manager(include_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = get_task_dict(list(tasks), tm)
    except (KeyError, ValueError) as e:
        raise UserError("studies.lmeval.tasks", list(tasks), f"lm-eval task names (or tasks of include_path): {e}") from None
    out = []

    def walk(node):
        for name, t in node.items():
            if isinstance(t, dict):
                walk(t)
                continue
            task = getattr(t, "task_name", None) or getattr(getattr(t, "config", None), "task", None) or str(name)
            hib, agg = t.higher_is_better() or {}, t.aggregation() or {}
            for metric, fn in agg.items():
                out.append((task, metric, hib.get(metric), fn is lm_mean))

    walk(tree)
    return tuple(out)


def metric_name(task: str, metric: str, filt: str = "none") -> str:
    return f"{task}.{metric}" + ("" if filt == "none" else f".{filt}")


@register_study("lmeval")
class LMEvalStudy:
    """lm-evaluation-harness tasks on every variant, through lm-eval's Python API on the model lorafair holds."""

    title = "lm-evaluation-harness tasks"
    headline: tuple[str, ...] = ()
    metric_specs: tuple[MetricSpec, ...] = ()  # the metrics are the tasks': see specs_for
    Config = LMEvalConfig

    @staticmethod
    def specs_for(config: LMEvalConfig) -> tuple[MetricSpec, ...]:
        """The metrics of the configured tasks (lm-eval's task definitions: aggregation, higher_is_better)."""
        if not lm_eval_installed():
            return ()
        specs = []
        for task, metric, hib, is_mean in _task_metrics(tuple(config.tasks), config.include_path):
            name = metric_name(task, metric)
            direction = "none" if hib is None else ("higher" if hib else "lower")
            role = config.roles.get(name, "target")
            if not is_mean or (direction == "none" and role == "target"):
                role = "diagnostic"
            specs.append(MetricSpec(name, role, direction, unit=task if is_mean else "", stat=mean(metric) if is_mean else None,
                                    doc=f"lm-eval task {task}, metric {metric}"))
        return tuple(specs)

    def evaluate(self, ctx: EvalContext) -> StudyResult:
        require_lm_eval()
        import lm_eval
        from lm_eval.models.huggingface import HFLM

        c: LMEvalConfig = ctx.study_config
        _task_metrics(tuple(c.tasks), c.include_path)  # unknown tasks: one error line
        lm = HFLM(pretrained=ctx.model, tokenizer=ctx.tokenizer, batch_size=c.batch_size, device=str(ctx.device))
        s = ctx.seed % 2**32
        res = lm_eval.simple_evaluate(
            model=lm, tasks=list(c.tasks), task_manager=_task_manager(c.include_path), num_fewshot=c.num_fewshot,
            limit=c.limit, log_samples=True, bootstrap_iters=c.n_boot, random_seed=s, numpy_random_seed=s,
            torch_random_seed=s, fewshot_random_seed=s, verbosity="ERROR")
        rows, items = [], {}
        for task, vals in res["results"].items():
            n = vals.get("sample_len") or len(res.get("samples", {}).get(task, [])) or None
            for key, v in vals.items():
                metric, sep, filt = key.partition(",")
                if not sep or metric.endswith("_stderr") or not isinstance(v, (int, float)) or isinstance(v, bool):
                    continue
                se = vals.get(f"{metric}_stderr,{filt}")
                ok = isinstance(se, (int, float)) and not isinstance(se, bool) and se == se
                rows.append(MetricRow(metric_name(task, metric, filt), float(v), float(v) - Z95 * se if ok else None,
                                      float(v) + Z95 * se if ok else None, n=n,
                                      note="" if ok else "no interval: lm-eval gave no standard error"))
        for task, samples in res.get("samples", {}).items():
            for filt in dict.fromkeys(x.get("filter", "none") for x in samples):
                docs = [x for x in samples if x.get("filter", "none") == filt]
                cols = {m: [float(x[m]) for x in docs] for m in (docs[0].get("metrics") or []) if docs
                        and all(isinstance(x.get(m), (int, float)) and not isinstance(x.get(m), bool) for x in docs)}
                if cols:
                    items[task if filt == "none" else f"{task}.{filt}"] = ItemSet([str(x["doc_id"]) for x in docs], cols)
        info = {"lm_eval": getattr(lm_eval, "__version__", ""), "tasks": list(c.tasks), "n_samples": res.get("n-samples"),
                "versions": res.get("versions"), "num_fewshot": res.get("n-shot")}
        return StudyResult(rows, info=info, items=items)
