"""Turn a :class:`DataSpec` into records: dispatch, field mapping, validation, seeded shuffle, limit."""

from __future__ import annotations

import importlib
import random

from lorafair.data.files import read_source
from lorafair.data.registry import DATASETS, DataContext, DataSpec
from lorafair.errors import UserError

# modules that register datasets (imported on demand, tolerant of ones not written yet)
DATASET_MODULES = (
    "lorafair.data.prompts_honest",
    "lorafair.data.prompts_redditbias",
    "lorafair.data.prompts_bold",
    "lorafair.data.prompts_mix",
    "lorafair.data.toxicity_detox",
    "lorafair.data.debias_data",
    "lorafair.data.tabular_datasets",
    "lorafair.studies.decisions",
    "lorafair.studies.toxicity",
    "lorafair.studies.stereotypes",
    "lorafair.studies.classification",
)


def import_dataset_modules() -> None:
    for m in DATASET_MODULES:
        try:
            importlib.import_module(m)
        except ModuleNotFoundError as e:
            if not (e.name and m.startswith(e.name)):
                raise


def load_records(spec: DataSpec, ctx: DataContext) -> list[dict]:
    """Records with ``text`` or ``prompt``+``completion`` (plus metadata), shuffled with ``ctx.seed``."""
    rows = read_source(spec, ctx)
    if rows is None:
        import_dataset_modules()
        builder = DATASETS.get(spec.source)
        rows = builder(spec, ctx)
    else:
        rows = [_map_fields(r, spec, ctx, i) for i, r in enumerate(rows, 1)]
    if not rows:
        raise UserError(f"{ctx.field_name}.source", spec.source, "a dataset with at least one record (it is empty)")
    rows = list(rows)
    random.Random(ctx.seed).shuffle(rows)
    if spec.limit:
        rows = rows[: spec.limit]
    return rows


def _map_fields(r: dict, spec: DataSpec, ctx: DataContext, line: int) -> dict:
    out = {k: v for k, v in r.items()}
    if spec.prompt_field in r and spec.completion_field in r:
        out["prompt"] = str(r[spec.prompt_field])
        out["completion"] = str(r[spec.completion_field])
    elif spec.text_field in r:
        out["text"] = str(r[spec.text_field])
    elif spec.prompt_field in r:
        out["prompt"] = str(r[spec.prompt_field])
    else:
        raise UserError.plain(
            f"{ctx.field_name}: record {line} of {spec.source} has neither '{spec.text_field}' nor "
            f"'{spec.prompt_field}'+'{spec.completion_field}' (set {ctx.field_name}.text_field / prompt_field / completion_field)"
        )
    return out


def split_holdout(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Deterministic train/held-out split (rows are already shuffled with the seed)."""
    n_eval = max(1, int(round(len(rows) * fraction)))
    if len(rows) - n_eval < 1:
        raise UserError("data.train", f"{len(rows)} records", "at least 2 records to hold some out")
    return rows[n_eval:], rows[:n_eval]
