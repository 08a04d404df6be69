"""Training throughput: tokens/s of full fine-tuning and of LoRA at a few ranks, in the same run.

    python benchmarks/bench_train.py [--model embedded:smollm2-135m-instruct] [--steps 10] [--ranks 1 16 64]

Prints tokens/s per variant and the ratio against full fine-tuning measured in the same process
(this machine is noisy; compare ratios, not absolute numbers across runs).
"""

from __future__ import annotations

import argparse

import torch

from lorafair.adapt.tokenize import encode_records
from lorafair.adapt.train import train_variant
from lorafair.adapt.variants import Variant
from lorafair.config.schema import TrainConfig
from lorafair.data.load import load_records
from lorafair.data.registry import DataContext, DataSpec
from lorafair.models.sources import load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    model, tok = load_model(args.model, device=args.device)
    model.requires_grad_(False)
    device = next(model.parameters()).device
    rows = load_records(DataSpec(source="bold-wiki", limit=args.steps * args.batch_size), DataContext())
    enc = encode_records(rows, tok, args.max_length)
    tcfg = TrainConfig(max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length)
    variants = [Variant("full", "full", lrs=(5e-5,))] + [Variant(f"lora-r{r}", "lora", r, (1e-3,), 2.0 * r) for r in args.ranks]
    res = {}
    for v in variants:
        _, r = train_variant(model, tok, v, enc, [], tcfg, 0, device, progress=False)
        res[v.name] = r
    base = res["full"].tokens_per_s
    print(f"model {args.model} on {device}, torch threads {torch.get_num_threads()}, {args.steps} steps × {args.batch_size} × ≤{args.max_length} tokens")
    print(f"{'variant':<10} {'trainable':>12} {'tokens/s':>10} {'× full':>7}")
    for name, r in res.items():
        print(f"{name:<10} {r.trainable_params:>12,} {r.tokens_per_s:>10.0f} {r.tokens_per_s / base:>7.2f}")


if __name__ == "__main__":
    main()
