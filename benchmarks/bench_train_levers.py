"""A/B of the CPU bf16 training levers, each measured in one process alternating with and without it.

    python benchmarks/bench_train_levers.py [--model embedded:smollm2-135m-instruct] [--steps 8] [--repeats 3]
                                            [--levers frozen attention heap]

- ``frozen``: LoRA r16 with the frozen base weights stored in bf16 for the training loop
  (:func:`lorafair.adapt.train.bf16_frozen_linears`) against recasting them at every step; prints both
  tokens/s and whether the loss histories are bit-identical (they must be);
- ``attention``: LoRA r16 and full fine-tuning with eager attention against SDPA (what
  :func:`lorafair.adapt.train.training_attention` picks on a CPU under bf16 for short sequences), both with freed
  buffers kept in the heap;
- ``heap``: LoRA r16 and full fine-tuning with freed buffers kept in the heap (:func:`lorafair.lm.heap.retained_heap`)
  against glibc's default (``LORAFAIR_RETAIN_HEAP=0``), both with SDPA; the loss histories must be bit-identical.

bf16 autocast is forced (``precision: bf16``): on a CPU without native bf16 the figures mean nothing.
Records: BOLD sentences (``bold-wiki``), batch 8, ``--max-length`` 128. The best of ``--repeats`` runs is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import os

import torch

from lorafair.adapt import train as T
from lorafair.adapt.tokenize import encode_records
from lorafair.adapt.variants import Variant
from lorafair.config.schema import TrainConfig
from lorafair.data.load import load_records
from lorafair.data.registry import DataContext, DataSpec
from lorafair.lm.precision import native_bf16
from lorafair.models.sources import load_model


@contextlib.contextmanager
def _off(model, enabled=True):
    yield 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--levers", nargs="+", default=["frozen", "attention", "heap"], choices=["frozen", "attention", "heap"])
    args = ap.parse_args()
    if not native_bf16("cpu"):
        print("skipped: this CPU has no native bf16 (AVX512-BF16 or AMX), where these levers do not apply")
        return
    model, tok = load_model(args.model)
    model.requires_grad_(False)
    print(f"{args.model}, native bf16 {native_bf16('cpu')}, threads {torch.get_num_threads()}")
    enc = encode_records(load_records(DataSpec(source="bold-wiki", limit=400), DataContext(seed=0)), tok, args.max_length)
    tcfg = TrainConfig(max_steps=args.steps, batch_size=8, max_length=args.max_length, precision="bf16",
                       checkpoint_every=None)
    lora = Variant("lora-r16", "lora", 16, (1e-3,), 32.0)
    full = Variant("full", "full", lrs=(5e-5,))
    frozen, attention = T.bf16_frozen_linears, T.training_attention

    def run(v):
        _, r = T.train_variant(model, tok, v, enc, [], tcfg, 0, torch.device("cpu"), progress=False)
        return r

    if "frozen" in args.levers:
        res = {"on": [], "off": []}
        for _ in range(args.repeats):
            for arm in ("on", "off"):
                T.bf16_frozen_linears = frozen if arm == "on" else _off
                res[arm].append(run(lora))
        T.bf16_frozen_linears = frozen
        best = {k: max(r.tokens_per_s for r in v) for k, v in res.items()}
        same = all([h["loss"] for h in a.history] == [h["loss"] for h in b.history] for a in res["on"] for b in res["off"])
        print(f"frozen bf16 base weights, LoRA r16: on {best['on']:.1f} off {best['off']:.1f} tokens/s, "
              f"ratio {best['on'] / best['off']:.2f}x, loss histories bit-identical: {same}")
    if "attention" in args.levers:
        for v in (lora, full):
            res = {"eager": [], "sdpa": []}
            for _ in range(args.repeats):
                for arm in ("eager", "sdpa"):
                    T.training_attention = (lambda *a, **k: "eager") if arm == "eager" else (lambda *a, **k: None)
                    res[arm].append(run(v))
            T.training_attention = attention
            best = {k: max(r.tokens_per_s for r in x) for k, x in res.items()}
            print(f"attention, {v.name}: eager {best['eager']:.1f} sdpa {best['sdpa']:.1f} tokens/s, ratio "
                  f"{best['eager'] / best['sdpa']:.2f}x; last losses eager {res['eager'][0].history[-1]['loss']} "
                  f"sdpa {res['sdpa'][0].history[-1]['loss']}")

    if "heap" in args.levers:
        T.training_attention = lambda *a, **k: None  # the model's kernel in both arms: the heap alone
        for v in (lora, full):
            res = {"heap": [], "mmap": []}
            for _ in range(args.repeats):
                for arm in ("heap", "mmap"):
                    os.environ["LORAFAIR_RETAIN_HEAP"] = "1" if arm == "heap" else "0"
                    res[arm].append(run(v))
            os.environ.pop("LORAFAIR_RETAIN_HEAP", None)
            best = {k: max(r.tokens_per_s for r in x) for k, x in res.items()}
            same = all([h["loss"] for h in a.history] == [h["loss"] for h in b.history]
                       for a in res["heap"] for b in res["mmap"])
            print(f"heap, {v.name}: retained {best['heap']:.1f} mmap {best['mmap']:.1f} tokens/s, ratio "
                  f"{best['heap'] / best['mmap']:.2f}x; loss histories bit-identical: {same}")
        T.training_attention = attention


if __name__ == "__main__":
    main()
