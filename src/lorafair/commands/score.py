"""``lorafair score``: score texts from a jsonl file (or stdin) with a toxicity scorer.

Input: one JSON object per line with a string field (``--field``, default ``text``); blank lines
are skipped; empty strings are valid. Output: one line per input, in order,
``{"text": ..., "scores": {label: probability, ...}}``; a score a scorer could not produce
(``llm-judge`` parse failure) is ``null``. The whole input is validated before any scoring.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from lorafair.errors import UserError

NAME = "score"
ORDER = 13
HELP = "score texts (jsonl file or - for stdin) with a toxicity scorer"


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def add_arguments(p) -> None:
    from lorafair.scorers.base import DEFAULT_SCORER

    p.add_argument("input", metavar="INPUT", help="jsonl file of objects with a text field, or - for stdin")
    p.add_argument("--scorer", default=DEFAULT_SCORER, help=f"scorer name[:arg] (default {DEFAULT_SCORER}; see `lorafair scorers`)")
    p.add_argument("--field", default="text", help="JSON field holding the text (default: text)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="texts per scorer call (default 64)")
    p.add_argument("--out", default=None, help="write the jsonl here (atomically) instead of stdout")
    p.add_argument("--device", default="cpu", help="device for the scorer: cpu, auto, cuda, cuda:N, mps (default cpu)")
    p.add_argument("--allow-pickle", action="store_true", help="hf/llm-judge: allow pickle (.bin) weights")
    p.add_argument("--offline", action="store_true", help="hf/detoxify: use only the local HF cache")


def read_texts(data: bytes, field: str, where: str) -> list[str]:
    """The ``field`` of every non-blank jsonl line, with a UserError naming the line on bad input."""
    from lorafair.data.files import parse_jsonl

    texts: list[str] = []
    for lineno, obj in parse_jsonl(data, where):
        if field not in obj:
            raise UserError.plain(f"{where} line {lineno}: missing field {field!r} (set --field to choose another)")
        value = obj[field]
        if not isinstance(value, str):
            raise UserError.plain(f"{where} line {lineno}: field {field!r} must be a string, got {type(value).__name__}")
        texts.append(value)
    return texts


def _clean(score: float) -> float | None:
    return None if isinstance(score, float) and math.isnan(score) else score


def score_lines(scorer: Any, texts: list[str], batch_size: int) -> Iterator[str]:
    """Output jsonl lines, one per text, in order (scored ``batch_size`` at a time)."""
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        for text, scores in zip(chunk, scorer.score(chunk, batch_size=batch_size)):
            row = {"text": text, "scores": {k: _clean(v) for k, v in scores.items()}}
            yield json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n"


def check_out(out: str) -> Path:
    """``--out``: a file path in a folder that exists (or can be made: its nearest existing parent
    is a writable folder). Checked before any scoring, so that a typo does not cost the scoring
    time; nothing is created here."""
    p = Path(out)
    if out.endswith(("/", os.sep)) or p.is_dir():
        raise UserError("--out", out, "a file path for the jsonl (this is a folder)")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError("--out", out, f"a file path in a folder ({parent} is a file)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError("--out", out, f"a file path in a writable folder ({parent} is not writable)")
    return p


def check_device(device: str) -> str:
    """``--device``: cpu, auto, cuda, cuda:N (N < number of GPUs) or mps, present on this machine."""
    import torch

    from lorafair.models.sources import resolve_device

    try:
        d = resolve_device(device)
    except UserError as e:
        raise UserError("--device", device, e.allowed or str(e)) from None
    if d.type == "cuda" and d.index is not None and d.index >= torch.cuda.device_count():
        raise UserError("--device", device, f"a GPU index below {torch.cuda.device_count()} (the GPUs on this machine)")
    if d.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device", device, "a device present on this machine (no MPS here); use auto or cpu")
    return device if device != "auto" else str(d)


def run(args) -> int:
    from lorafair.scorers import build_scorer

    out_path = check_out(args.out) if args.out else None
    device = check_device(args.device)
    if args.input == "-":
        data, where = sys.stdin.buffer.read(), "stdin"
    else:
        try:
            with open(args.input, "rb") as f:
                data = f.read()
        except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
            raise UserError("INPUT", args.input, f"a readable jsonl file or - for stdin ({e.strerror})") from None
        where = args.input
    texts = read_texts(data, args.field, where)
    options: dict[str, Any] = {}
    if args.allow_pickle:
        options["allow_pickle"] = True
    if args.offline:
        options["local_files_only"] = True
    scorer = build_scorer(args.scorer, device, **options)
    if out_path is not None:
        from lorafair.atomic import atomic_write_text

        text = "".join(score_lines(scorer, texts, args.batch_size))
        try:
            atomic_write_text(out_path, text)
        except OSError as e:
            raise UserError("--out", args.out, f"a writable file path ({e.strerror or type(e).__name__})") from None
    else:
        out = sys.stdout
        for line in score_lines(scorer, texts, args.batch_size):
            out.write(line)
        out.flush()
    failures = getattr(scorer, "stats", {}).get("parse_failures") if hasattr(scorer, "stats") else None
    if failures:
        print(f"note: {failures} of {len(texts)} answers had no rating (scores null)", file=sys.stderr)
    return 0
