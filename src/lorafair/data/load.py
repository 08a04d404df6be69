"""Turn a :class:`DataSpec` into records: dispatch, field mapping, validation, seeded shuffle, limit."""

from __future__ import annotations

import math
import numbers
import random

from lorafair.data.files import read_source_located
from lorafair.data.registry import DATASETS, DataContext, DataSpec
from lorafair.errors import UserError

def check_dataset_name(spec: DataSpec, field: str) -> None:
    """UserError naming ``field.source`` when ``spec.source`` is neither a file/hub source nor a registered
    dataset (the registry finds its plug-ins on this lookup): lets a config name the bad source before any work."""
    if ":" in spec.source:
        return
    if spec.source not in DATASETS:
        raise UserError(f"{field}.source", spec.source, f"one of {', '.join(DATASETS.names())}, or jsonl:PATH, csv:PATH, parquet:PATH, hf:DATASET_ID")


def load_records(spec: DataSpec, ctx: DataContext) -> list[dict]:
    """Records with ``text`` or ``prompt``+``completion`` (plus metadata), shuffled with ``ctx.seed``."""
    located = read_source_located(spec, ctx)
    if located is None:
        check_dataset_name(spec, ctx.field_name)
        rows = DATASETS.get(spec.source)(spec, ctx)
    else:
        rows = [_map_fields(r, spec, ctx, where) for where, r in located]
    if not rows:
        raise UserError(f"{ctx.field_name}.source", spec.source, "a dataset with at least one record (it is empty)")
    rows = list(rows)
    random.Random(ctx.seed).shuffle(rows)
    if spec.limit:
        rows = rows[: spec.limit]
    return rows


def _describe(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, float) and math.isnan(v):
        return "NaN (a missing value)"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, numbers.Real):
        return f"the number {v}"
    return f"a {type(v).__name__}"


def _text_of(r: dict, key: str, setting: str, spec: DataSpec, ctx: DataContext, where: str) -> str:
    """``r[key]`` as the text to train on: a string, or a finite number written out; null, booleans, lists,
    objects and NaN are refused with the record's line/row (never trained as "None")."""
    v = r[key]
    if isinstance(v, str):
        return v
    if isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v):
        return str(v)
    raise UserError(f"{ctx.field_name}.{setting}", key,
                    f"a string in field {key!r} of every record ({where} of {spec.source} has {_describe(v)})")


def _map_fields(r: dict, spec: DataSpec, ctx: DataContext, where: str | int) -> dict:
    if isinstance(where, int):
        where = f"record {where}"
    out = {k: v for k, v in r.items()}
    p, c, t = spec.prompt_field, spec.completion_field, spec.text_field
    if p in r and c in r:
        out["prompt"] = _text_of(r, p, "prompt_field", spec, ctx, where)
        out["completion"] = _text_of(r, c, "completion_field", spec, ctx, where)
    elif t in r:
        out["text"] = _text_of(r, t, "text_field", spec, ctx, where)
    elif p in r:
        out["prompt"] = _text_of(r, p, "prompt_field", spec, ctx, where)
    else:
        keys = ", ".join(repr(k) for k in list(r)[:12]) + (" …" if len(r) > 12 else "")
        raise UserError(
            f"{ctx.field_name}.text_field", t,
            f"a field {t!r} (or {p!r} and {c!r}) in every record; {where} of {spec.source} has "
            f"{keys or 'no fields'} (set {ctx.field_name}.text_field / prompt_field / completion_field)",
        )
    return out


def split_holdout(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Deterministic train/held-out split (rows are already shuffled with the seed)."""
    n_eval = max(1, int(round(len(rows) * fraction)))
    if len(rows) - n_eval < 1:
        raise UserError("data.train", f"{len(rows)} records", "at least 2 records to hold some out")
    return rows[n_eval:], rows[:n_eval]
