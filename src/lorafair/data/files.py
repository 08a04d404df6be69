"""Records from local files (jsonl, csv, parquet) and from Hugging Face datasets (online)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from lorafair.data.registry import DataContext, DataSpec
from lorafair.errors import UserError


def _check_file(path: str, field: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(field, path, "an existing file")
    return p


def parse_jsonl(data: bytes, where: str) -> list[tuple[int, dict]]:
    """(line number, object) of every non-blank line of jsonl bytes; a UserError naming ``where`` and the
    line for non-UTF-8 bytes, invalid JSON or a non-object line. Shared by data files and `lorafair score`."""
    rows: list[tuple[int, dict]] = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise UserError.plain(f"{where} line {lineno}: not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError.plain(f"{where} line {lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise UserError.plain(f"{where} line {lineno}: expected a JSON object, got {type(obj).__name__}")
        rows.append((lineno, obj))
    return rows


def read_jsonl(path: str, field: str = "data.source") -> list[dict]:
    p = _check_file(path, field)
    return [obj for _, obj in parse_jsonl(p.read_bytes(), f"{field}: {path}")]


def read_csv(path: str, field: str = "data.source") -> list[dict]:
    p = _check_file(path, field)
    try:
        with p.open(encoding="utf-8", newline="") as f:
            return [dict(r) for r in csv.DictReader(f)]
    except UnicodeDecodeError as e:
        raise UserError.plain(f"{field}: {path} is not UTF-8 text (byte {e.start})") from None


def read_parquet(path: str, field: str = "data.source") -> list[dict]:
    p = _check_file(path, field)
    import pandas as pd

    return pd.read_parquet(p).to_dict(orient="records")


def read_hf(arg: str, spec: DataSpec, field: str = "data.source") -> list[dict]:
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise UserError(field, f"hf:{arg}", "the `datasets` package installed (pip install datasets)") from None
    from datasets import load_dataset

    name, _, config = arg.partition(":")
    try:
        ds = load_dataset(name, config or None, split=spec.split or "train")
    except Exception as e:  # network, missing dataset …
        raise UserError(field, f"hf:{arg}", f"a dataset reachable offline or online ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    return [dict(r) for r in ds]


FILE_READERS = {"jsonl": read_jsonl, "json": read_jsonl, "csv": read_csv, "parquet": read_parquet}


def read_source(spec: DataSpec, ctx: DataContext) -> list[dict] | None:
    """Records of a file/hub source, or None when ``spec.source`` is a registered dataset name."""
    kind, sep, arg = spec.source.partition(":")
    field = f"{ctx.field_name}.source"
    if not sep:
        return None
    if kind in FILE_READERS:
        return FILE_READERS[kind](arg, field)
    if kind == "hf":
        return read_hf(arg, spec, field)
    return None
