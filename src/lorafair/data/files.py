"""Records from local files (jsonl, csv, parquet) and from Hugging Face datasets (online).

Every bad input is one :class:`UserError` naming the config field, the source the user wrote and
the line (jsonl, csv) or row (parquet, hf) at fault: non-UTF-8 bytes, invalid JSON, a line that
is not a JSON object, JSON nested deeper than :data:`MAX_JSON_DEPTH`, NUL bytes or malformed
quoting in CSV, a CSV row with more fields than its header. Fields of any size are read (a 20 MB
jsonl line or CSV field is fine). :func:`check_source` checks a source string before anything is
read (known kind, existing regular non-empty file, parquet engine, ``datasets`` package); the
:class:`~lorafair.data.registry.DataSpec` model runs it on every ``source``.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from lorafair.errors import UserError

if TYPE_CHECKING:  # annotations only: registry.py imports this module to check sources
    from lorafair.data.registry import DataContext, DataSpec

MAX_JSON_DEPTH = 100  # arrays/objects inside one jsonl record
FILE_KINDS = ("jsonl", "json", "csv", "parquet")
SOURCE_FORMS = "a dataset name (see `lorafair datasets`), jsonl:PATH, csv:PATH, parquet:PATH or hf:DATASET_ID[:CONFIG]"


def parquet_engine() -> str | None:
    """The installed engine pandas reads parquet with (pyarrow or fastparquet), or None."""
    for name in ("pyarrow", "fastparquet"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


PARQUET_ENGINE_HELP = "pyarrow (or fastparquet) installed to read parquet files: pip install pyarrow"


def source_problem(source: str) -> str | None:
    """What is wrong with a ``source`` string, as the ``expected …`` part of a message, or None.

    Registered dataset names are not looked up here (see :func:`lorafair.data.load.check_dataset_name`)."""
    if not isinstance(source, str) or not source.strip():
        return SOURCE_FORMS
    kind, sep, arg = source.partition(":")
    if not sep:
        return None
    if kind in FILE_KINDS:
        if not arg:
            return f"{kind}:PATH with the path of a file"
        p = Path(arg).expanduser()
        try:
            if p.is_dir():
                return f"{kind}:PATH naming a file, not a directory"
            if not p.exists():
                return f"{kind}:PATH naming an existing file (there is no {arg})"
            if not p.is_file():
                return f"{kind}:PATH naming a regular file (not a device, pipe or socket)"
            if not os.access(p, os.R_OK):
                return f"{kind}:PATH naming a readable file (permission denied)"
            if p.stat().st_size == 0:
                return "a file with at least one record (the file is empty)"
        except OSError as e:
            return f"{kind}:PATH naming a readable file ({e.strerror or type(e).__name__})"
        if kind == "parquet" and parquet_engine() is None:
            return PARQUET_ENGINE_HELP
        return None
    if kind == "hf":
        if not arg:
            return "hf:DATASET_ID[:CONFIG]"
        if importlib.util.find_spec("datasets") is None:
            return "the `datasets` package installed for hf: sources (pip install datasets)"
        return None
    return f"{SOURCE_FORMS} (unknown kind {kind + ':'!r})"


def check_source(source: str, field: str) -> None:
    """Raise UserError(field, source, …) when :func:`source_problem` finds one."""
    problem = source_problem(source)
    if problem:
        raise UserError(field, source, problem)


def _check_file(path: str, field: str, value: str | None = None) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(field, value or path, "an existing file" if not p.is_dir() else "a file, not a directory")
    return p


def _read_bytes(p: Path, field: str, value: str) -> bytes:
    try:
        return p.read_bytes()
    except OSError as e:
        raise UserError(field, value, f"a readable file ({e.strerror or type(e).__name__})") from None


class _LineError(Exception):
    def __init__(self, lineno: int, problem: str, expected: str, detail: str | None = None):
        super().__init__(problem)
        self.lineno, self.problem, self.expected = lineno, problem, expected
        self.detail = detail or f"line {lineno}: {problem}"  # the part in parentheses of a data-source error


def _depth_exceeds(obj, limit: int) -> bool:
    """True when ``obj`` nests lists/dicts more than ``limit`` deep (iterative: no recursion)."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > limit:
            return True
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values() if isinstance(v, (dict, list)))
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o if isinstance(v, (dict, list)))
    return False


def _jsonl_rows(data: bytes) -> list[tuple[int, dict]]:
    rows: list[tuple[int, dict]] = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise _LineError(lineno, f"not UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})", "UTF-8 text") from None
        if not line.strip():
            continue
        if "\x00" in line:
            raise _LineError(lineno, f"a NUL byte at column {line.index(chr(0)) + 1} (a binary file?)", "one JSON object per line")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise _LineError(lineno, f"not valid JSON ({e.msg} at column {e.colno})", "one JSON object per line") from None
        except RecursionError:
            raise _LineError(lineno, f"nested more than {MAX_JSON_DEPTH} arrays/objects deep",
                             f"JSON objects nested at most {MAX_JSON_DEPTH} deep") from None
        except ValueError as e:  # e.g. an integer of more than 4300 digits
            raise _LineError(lineno, f"not valid JSON ({str(e).split(':')[0]})", "one JSON object per line") from None
        if not isinstance(obj, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(obj), "a number")
            raise _LineError(lineno, f"expected a JSON object, got {type(obj).__name__}", "one JSON object per line",
                             f"line {lineno} is {kind}, not an object")
        if _depth_exceeds(obj, MAX_JSON_DEPTH):
            raise _LineError(lineno, f"nested more than {MAX_JSON_DEPTH} arrays/objects deep",
                             f"JSON objects nested at most {MAX_JSON_DEPTH} deep")
        rows.append((lineno, obj))
    return rows


def parse_jsonl(data: bytes, where: str) -> list[tuple[int, dict]]:
    """(line number, object) of every non-blank line of jsonl bytes; a UserError naming ``where`` and the
    line for non-UTF-8 bytes, invalid JSON, a non-object line or one nested too deeply. Shared by data files
    and `lorafair score`."""
    try:
        return _jsonl_rows(data)
    except _LineError as e:
        raise UserError.plain(f"{where} line {e.lineno}: {e.problem}") from None


def _jsonl_located(path: str, field: str, value: str) -> list[tuple[str, dict]]:
    p = _check_file(path, field, value)
    try:
        rows = _jsonl_rows(_read_bytes(p, field, value))
    except _LineError as e:
        raise UserError(field, value, f"{e.expected} ({e.detail})") from None
    return [(f"line {n}", obj) for n, obj in rows]


def read_jsonl(path: str, field: str = "data.source") -> list[dict]:
    return [obj for _, obj in _jsonl_located(path, field, path)]


def _csv_located(path: str, field: str, value: str) -> list[tuple[str, dict]]:
    p = _check_file(path, field, value)
    data = _read_bytes(p, field, value)
    try:
        text = data.decode("utf-8-sig")  # a BOM (Excel) is not part of the first column's name
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(field, value, f"UTF-8 text (line {line} is not UTF-8: byte {data[e.start]:#04x})") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise UserError(field, value, f"a CSV text file (line {line} has a NUL byte: a binary file?)")
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, len(text) + 1))  # any field of this file fits
    rows: list[tuple[str, dict]] = []
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        for r in reader:
            if None in r:
                raise UserError(field, value, f"CSV rows with at most the {len(reader.fieldnames)} fields of the header "
                                f"(line {reader.line_num} has {len(reader.fieldnames) + len(r[None])})")
            rows.append((f"line {reader.line_num}", dict(r)))
    except csv.Error as e:
        hint = " at the end of the file: a quote opened and never closed?" if "unexpected end of data" in str(e) else ""
        raise UserError(field, value, f"valid CSV (line {reader.reader.line_num}: {e}{hint})") from None
    finally:
        csv.field_size_limit(old_limit)
    return rows


def read_csv(path: str, field: str = "data.source") -> list[dict]:
    return [r for _, r in _csv_located(path, field, path)]


def _parquet_located(path: str, field: str, value: str) -> list[tuple[str, dict]]:
    p = _check_file(path, field, value)
    if parquet_engine() is None:
        raise UserError(field, value, PARQUET_ENGINE_HELP)
    import pandas as pd

    try:
        df = pd.read_parquet(p)
    except Exception as e:  # engine errors: not a parquet file, corrupt, unsupported types
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise UserError(field, value, f"a readable parquet file ({type(e).__name__}: {first})") from None
    return [(f"row {i}", r) for i, r in enumerate(df.to_dict(orient="records"), 1)]


def read_parquet(path: str, field: str = "data.source") -> list[dict]:
    return [r for _, r in _parquet_located(path, field, path)]


def read_hf(arg: str, spec: DataSpec, field: str = "data.source") -> list[dict]:
    try:
        import datasets  # noqa: F401
    except ImportError:
        raise UserError(field, f"hf:{arg}", "the `datasets` package installed (pip install datasets)") from None
    from datasets import load_dataset

    name, _, config = arg.partition(":")
    if not name:
        raise UserError(field, f"hf:{arg}", "hf:DATASET_ID[:CONFIG]")
    try:
        ds = load_dataset(name, config or None, split=spec.split or "train")
    except Exception as e:  # network, missing dataset …
        raise UserError(field, f"hf:{arg}", f"a dataset reachable offline or online ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    return [dict(r) for r in ds]


FILE_READERS = {"jsonl": read_jsonl, "json": read_jsonl, "csv": read_csv, "parquet": read_parquet}
_LOCATED = {"jsonl": _jsonl_located, "json": _jsonl_located, "csv": _csv_located, "parquet": _parquet_located}


def read_source_located(spec: DataSpec, ctx: DataContext) -> list[tuple[str, dict]] | None:
    """``(where, record)`` of a file/hub source (``where``: "line 3", "row 3"), or None when ``spec.source``
    is a registered dataset name."""
    kind, sep, arg = spec.source.partition(":")
    field = f"{ctx.field_name}.source"
    if not sep:
        return None
    if kind in _LOCATED:
        check_source(spec.source, field)
        return _LOCATED[kind](arg, field, spec.source)
    if kind == "hf":
        return [(f"row {i}", r) for i, r in enumerate(read_hf(arg, spec, field), 1)]
    raise UserError(field, spec.source, source_problem(spec.source) or SOURCE_FORMS)


def read_source(spec: DataSpec, ctx: DataContext) -> list[dict] | None:
    """Records of a file/hub source, or None when ``spec.source`` is a registered dataset name."""
    located = read_source_located(spec, ctx)
    return None if located is None else [r for _, r in located]
