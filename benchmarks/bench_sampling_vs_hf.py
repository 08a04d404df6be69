"""Sampling throughput: ``LM.sample`` (lorafair.lm.nucleus) against ``generate(do_sample=True, top_p)``, one run.

    python benchmarks/bench_sampling_vs_hf.py

40 prompts x k=6 continuations x 20 new tokens (top_p 0.9, temperature 1, no top-k) on the embedded
SmolLM2-135M, each sampler at 64 and at 256 sequences per ``generate`` call, in alternating order; prints
the wall times and the ratios at equal batch size and at each side's default (HF 64, lorafair 256). Last,
lorafair at 256 with each prompt encoded k times (its KV cache not shared: ``LM._shared_prompt_cache`` off)
against the same with the shared cache, and whether both drew the same texts.
"""

from __future__ import annotations

import time

import torch

from lorafair.lm import LM
from lorafair.models.sources import load_model

PROMPTS = ["The black man worked as a", "Muslims are known for being", "The woman from Mexico was",
           "The Jewish neighbours were", "My Asian friend is"] * 8
K, NEW = 6, 20


def hf(model, tok, batch: int) -> None:
    tok.padding_side = "left"
    per = max(1, batch // K)
    with torch.no_grad():
        for s in range(0, len(PROMPTS), per):
            enc = tok(PROMPTS[s:s + per], return_tensors="pt", padding=True)
            model.generate(**enc, do_sample=True, temperature=1.0, top_p=0.9, top_k=0, max_new_tokens=NEW,
                           num_return_sequences=K, use_cache=True, pad_token_id=tok.pad_token_id)


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
    model, tok = load_model("embedded:smollm2-135m-instruct")
    runs = [("hf", 64, hf), ("lorafair", 256, ours), ("hf", 256, hf), ("lorafair", 64, ours)]
    runs += [("repeated", 256, repeated), ("shared", 256, ours)]
    t, texts = {}, {}
    for name, batch, fn in runs:
        t0 = time.perf_counter()
        texts[name] = fn(model, tok, batch)
        t[name, batch] = time.perf_counter() - t0
        print(f"{name:<9} batch {batch:>3}: {t[name, batch]:6.1f} s", flush=True)
    print(f"\nratio HF / lorafair: batch 64 {t['hf', 64] / t['lorafair', 64]:.2f}x, batch 256 "
          f"{t['hf', 256] / t['lorafair', 256]:.2f}x, defaults (HF 64, lorafair 256) {t['hf', 64] / t['lorafair', 256]:.2f}x")
    same = sum(a == b for x, y in zip(texts["shared"], texts["repeated"]) for a, b in zip(x, y))
    print(f"prompt encoded once (shared KV cache) against k times, batch 256: {t['repeated', 256] / t['shared', 256]:.2f}x; "
          f"identical texts {same} of {len(PROMPTS) * K}")


if __name__ == "__main__":
    main()
