"""A/B of the CPU bf16 scoring lever, measured in one process alternating with and without it.

    python benchmarks/bench_eval_levers.py [--model embedded:smollm2-135m-instruct] [--pairs 300] [--repeats 3]

``held``: under ``eval.precision`` bf16 the LM engine stores the linear weights as bf16 copies for a whole scoring
call (:func:`lorafair.lm.precision.bf16_linear_weights`) instead of letting autocast recast every weight at every
forward pass. Scores the same CrowS-Pairs sentences (the stereotypes study's seeded subset, both sentences of each
pair) with and without it, prints both times, the ratio (best of ``--repeats``) and whether the log-likelihoods
are bit-identical (they must be). Also prints fp32's time on the same sentences for context.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

import lorafair.lm.engine as E
from lorafair.lm import LM
from lorafair.lm import precision as P
from lorafair.lm.precision import native_bf16
from lorafair.models.sources import load_model


@contextlib.contextmanager
def _off(model, enabled=True, **kw):
    yield 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not native_bf16("cpu"):
        print("skipped: this CPU has no native bf16 (AVX512-BF16 or AMX), where bf16 scoring does not pay")
        return
    from lorafair.studies.stereotypes import crows
    from lorafair.studies.stereotypes.sampling import split_items, stratified_sample

    items = stratified_sample(split_items(crows.load_crows(), "crows", "eval"), lambda x: x["bias_type"], args.pairs, 0)
    texts = [s for it in items for s in (it["sent_more"], it["sent_less"])]
    model, tok = load_model(args.model)
    model.eval()
    lm = LM(model, tok, batch_size=args.batch_size)
    held_ctx = E.bf16_linear_weights

    def score(prec: str, held: bool):
        E.bf16_linear_weights = held_ctx if held else _off
        try:
            with P.use({"score": prec}):
                t = time.perf_counter()
                out = lm.rolling_nll(texts, max_length=128, order="descending")
                return time.perf_counter() - t, np.array([n for n, _ in out])
        finally:
            E.bf16_linear_weights = held_ctx

    print(f"{args.model}: {len(texts)} CrowS-Pairs sentences, batch {args.batch_size}")
    score("bf16", True)  # warm-up
    best = {True: float("inf"), False: float("inf")}
    vals = {}
    for _ in range(args.repeats):
        for held in (False, True):
            t, v = score("bf16", held)
            best[held] = min(best[held], t)
            vals[held] = v
    t32, _ = score("fp32", False)
    same = bool((vals[True] == vals[False]).all())
    print(f"bf16, weights recast per pass: {best[False]:.2f} s; bf16, weights held in bf16: {best[True]:.2f} s; "
          f"ratio {best[False] / best[True]:.2f}x; bit-identical: {same}; fp32: {t32:.2f} s")


if __name__ == "__main__":
    main()
