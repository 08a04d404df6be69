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
import sys
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
    p.add_argument("--device", default="cpu", help="device for the scorer (default cpu)")
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


def run(args) -> int:
    from lorafair.scorers import build_scorer

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
    scorer = build_scorer(args.scorer, args.device, **options)
    if args.out:
        from lorafair.run.atomic import atomic_write_text

        atomic_write_text(args.out, "".join(score_lines(scorer, texts, args.batch_size)))
    else:
        out = sys.stdout
        for line in score_lines(scorer, texts, args.batch_size):
            out.write(line)
        out.flush()
    failures = getattr(scorer, "stats", {}).get("parse_failures") if hasattr(scorer, "stats") else None
    if failures:
        print(f"note: {failures} of {len(texts)} answers had no rating (scores null)", file=sys.stderr)
    return 0
