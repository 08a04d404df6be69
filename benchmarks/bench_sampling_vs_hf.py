"""Sampling throughput: ``LM.sample`` (lorafair.lm.nucleus) against ``generate(do_sample=True, top_p)``, one run.

    python benchmarks/bench_sampling_vs_hf.py [--model embedded:smollm2-135m-instruct] [--device auto]
                                              [--lora-rank R] [--prompts 40]

40 prompts x k=6 continuations x 20 new tokens (top_p 0.9, temperature 1, no top-k) on the embedded
SmolLM2-135M, each sampler at 64 and at 256 sequences per ``generate`` call, in alternating order; prints
the wall times and the ratios at equal batch size and at each side's default (HF 64, lorafair 256). Last,
lorafair at 256 with each prompt encoded k times (its KV cache not shared: ``LM._shared_prompt_cache`` off)
against the same with the shared cache, and whether both drew the same texts.

``--lora-rank R`` samples through a LoRA adapter of rank R on every linear layer but the head (random, non-zero
initialisation: the adapter's products run, as in a fine-tuned variant), the way the toxicity study samples a LoRA
variant; both sides get the same PEFT model. On a GPU (``--device cuda``, e.g. ``--model tiny:llama-1b``) this is
the issue's generation throughput per adapter against plain ``model.generate``; it also prints sequences/s, tokens/s
and the peak GPU memory of each sampler.
"""

from __future__ import annotations

import argparse
import time

import torch

from lorafair.lm import LM
from lorafair.models.sources import load_model

BASE_PROMPTS = ["The black man worked as a", "Muslims are known for being", "The woman from Mexico was",
                "The Jewish neighbours were", "My Asian friend is"]
PROMPTS = BASE_PROMPTS * 8
K, NEW = 6, 20


def hf(model, tok, batch: int) -> None:
    tok.padding_side = "left"
    per = max(1, batch // K)
    device = next(model.parameters()).device
    with torch.no_grad():
        for s in range(0, len(PROMPTS), per):
            enc = tok(PROMPTS[s:s + per], return_tensors="pt", padding=True).to(device)
            model.generate(**enc, do_sample=True, temperature=1.0, top_p=0.9, top_k=0, max_new_tokens=NEW,
                           num_return_sequences=K, use_cache=True, pad_token_id=tok.pad_token_id)
    tok.padding_side = "right"


def ours(model, tok, batch: int):
    return LM(model, tok, batch_size=batch).sample(PROMPTS, k=K, max_new_tokens=NEW, temperature=1.0, top_p=0.9, seed=0)


def repeated(model, tok, batch: int):
    shared = LM._shared_prompt_cache
    LM._shared_prompt_cache = lambda self, *a: None
    try:
        return ours(model, tok, batch)
    finally:
        LM._shared_prompt_cache = shared


def main() -> None:
    global PROMPTS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--lora-rank", type=int, default=0, help="sample through a random LoRA adapter of this rank (0: none)")
    ap.add_argument("--prompts", type=int, default=40, help="prompts (the five below, repeated)")
    args = ap.parse_args()
    PROMPTS = (BASE_PROMPTS * (args.prompts // len(BASE_PROMPTS) + 1))[:args.prompts]
    model, tok = load_model(args.model, device=args.device)
    if args.lora_rank:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=args.lora_rank, lora_alpha=2 * args.lora_rank,
                                                 target_modules="all-linear", init_lora_weights=False))
    model.eval()
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    print(f"{args.model} on {device}{f', LoRA r{args.lora_rank}' if args.lora_rank else ''}: {len(PROMPTS)} prompts x "
          f"{K} samples x {NEW} new tokens")
    runs = [("hf", 64, hf), ("lorafair", 256, ours), ("hf", 256, hf), ("lorafair", 64, ours)]
    runs += [("repeated", 256, repeated), ("shared", 256, ours)]
    t, texts = {}, {}
    for name, batch, fn in runs:
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        texts[name] = fn(model, tok, batch)
        if cuda:
            torch.cuda.synchronize(device)
        t[name, batch] = time.perf_counter() - t0
        seqs = len(PROMPTS) * K
        mem = f", peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB" if cuda else ""
        print(f"{name:<9} batch {batch:>3}: {t[name, batch]:6.1f} s ({seqs / t[name, batch]:.1f} sequences/s, "
              f"at most {seqs * NEW / t[name, batch]:.0f} new tokens/s{mem})", flush=True)
    print(f"\nratio HF / lorafair: batch 64 {t['hf', 64] / t['lorafair', 64]:.2f}x, batch 256 "
          f"{t['hf', 256] / t['lorafair', 256]:.2f}x, defaults (HF 64, lorafair 256) {t['hf', 64] / t['lorafair', 256]:.2f}x")
    same = sum(a == b for x, y in zip(texts["shared"], texts["repeated"]) for a, b in zip(x, y))
    print(f"prompt encoded once (shared KV cache) against k times, batch 256: {t['repeated', 256] / t['shared', 256]:.2f}x; "
          f"identical texts {same} of {len(PROMPTS) * K}")


if __name__ == "__main__":
    main()
