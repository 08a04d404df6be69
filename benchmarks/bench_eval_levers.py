"""A/B of the CPU scoring levers, each measured in one process alternating with and without it.

    python benchmarks/bench_eval_levers.py [--model embedded:smollm2-135m-instruct] [--pairs 300] [--repeats 3]
                                           [--levers held heap]

``held``: under ``eval.precision`` bf16 the LM engine stores the linear weights as bf16 copies for a whole scoring
call (:func:`lorafair.lm.precision.bf16_linear_weights`) instead of letting autocast recast every weight at every
forward pass. Scores the same CrowS-Pairs sentences (the stereotypes study's seeded subset, both sentences of each
pair) with and without it, prints both times, the ratio (best of ``--repeats``) and whether the log-likelihoods
are bit-identical (they must be). Also prints fp32's time on the same sentences for context.

``heap``: freed buffers kept in the process heap for the next batch (:func:`lorafair.lm.heap.retained_heap`,
switched off with ``LORAFAIR_RETAIN_HEAP=0``) against glibc's default (an ``mmap`` per large buffer, page faults
at every batch), in bf16 (with the weights held) and in fp32; the log-likelihoods must be bit-identical.
"""

from __future__ import annotations

import argparse
import contextlib
import os
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
    ap.add_argument("--levers", nargs="+", default=["held", "heap"], choices=["held", "heap"])
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

    def score(prec: str, held: bool = True, heap: bool = True):
        E.bf16_linear_weights = held_ctx if held else _off
        os.environ["LORAFAIR_RETAIN_HEAP"] = "1" if heap else "0"
        try:
            with P.use({"score": prec}):
                t = time.perf_counter()
                out = lm.rolling_nll(texts, max_length=128, order="descending")
                return time.perf_counter() - t, np.array([n for n, _ in out])
        finally:
            E.bf16_linear_weights = held_ctx
            os.environ.pop("LORAFAIR_RETAIN_HEAP", None)

    def ab(label: str, off: dict, on: dict, prec: str = "bf16") -> None:
        best = {False: float("inf"), True: float("inf")}
        vals = {}
        for _ in range(args.repeats):
            for lever in (False, True):
                t, v = score(prec, **(on if lever else off))
                best[lever] = min(best[lever], t)
                vals[lever] = v
        same = bool((vals[True] == vals[False]).all())
        print(f"{label}: without {best[False]:.2f} s, with {best[True]:.2f} s; ratio {best[False] / best[True]:.2f}x; "
              f"bit-identical: {same}", flush=True)

    print(f"{args.model}: {len(texts)} CrowS-Pairs sentences, batch {args.batch_size}")
    score("bf16")  # warm-up
    if "held" in args.levers:
        ab("held (bf16: weights recast per pass -> held in bf16)", {"held": False}, {"held": True})
    if "heap" in args.levers:
        ab("heap, bf16 (mmap per buffer -> retained heap)", {"heap": False}, {"heap": True})
        ab("heap, fp32 (mmap per buffer -> retained heap)", {"heap": False}, {"heap": True}, "fp32")
    t32, _ = score("fp32")
    print(f"fp32 with every lever: {t32:.2f} s")

if __name__ == "__main__":
    main()
