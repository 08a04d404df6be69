"""Does bf16 sampling move the toxicity study's answers more than a new fp32 draw does?

    python benchmarks/bench_sampling_seeds.py --run DIR [--seeds 0 1 2] [--model embedded:smollm2-135m-instruct]

``DIR``: a finished run of the ``demo`` recipe (seed 0; its trained variants are reused). For every variant
(base, full, LoRA r1-r64) the study's prompts (read from ``base-s0/samples.jsonl``) are sampled as the study
samples them (k=6, 20 new tokens, top_p 0.9, temperature 1) with each sampling seed, in fp32 and in bf16, scored
with ``jigsaw-bilstm``; prints each EMT, each variant's paired EMT change against the base of the same seed and
precision (95% bootstrap over prompts; * where the interval excludes 0), and per variant the spread of EMT across
fp32 seeds against the distance between the bf16 and fp32 means. ``eval.precision: auto`` keeps sampling in
fp32 (docs/performance.md); this is the measurement that decides whether bf16 changes answers more than the draw.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

from lorafair.adapt.checkpoint import load_adapter, load_full_weights
from lorafair.adapt.shared_copy import variant_copy
from lorafair.lm import LM
from lorafair.lm import precision as P
from lorafair.models.sources import load_model
from lorafair.scorers import build_scorer

VARIANTS = ["base", "full", "lora-r1", "lora-r4", "lora-r16", "lora-r64"]


def load_variant(base, run: Path, name: str):
    """A trained variant of the run, as the runner holds it: LoRA adapters on the base model's own weights."""
    if name == "base":
        return base
    if name == "full":
        return load_full_weights(variant_copy(base, "full"), run / "full-s0" / "model.safetensors").eval()
    return load_adapter(variant_copy(base, "lora"), run / f"{name}-s0" / "adapter").eval()


def delta_ci(a, b, rng):
    d = a - b
    bs = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(2000)]
    return d.mean(), np.percentile(bs, 2.5), np.percentile(bs, 97.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=None, help="a finished demo run directory")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    args = ap.parse_args()
    if args.run is None:
        print("skipped: needs --run DIR, a finished run of the demo recipe")
        return
    run = Path(args.run)
    rows = [json.loads(line) for line in open(run / "base-s0" / "samples.jsonl")]
    prompts = [r["prompt"] for r in rows if r["sample"] == 0]
    print(len(prompts), "prompts", flush=True)
    base, tok = load_model(args.model)
    base.eval()
    scorer = build_scorer("jigsaw-bilstm")
    seeds, out = args.seeds, {}
    for name in VARIANTS:
        m = load_variant(base, run, name)
        for prec in ["fp32", "bf16"]:
            for seed in seeds:
                t = time.perf_counter()
                with P.use({"sample": prec}):
                    texts = LM(m, tok, batch_size=256).sample(prompts, k=6, max_new_tokens=20, temperature=1.0,
                                                              top_p=0.9, seed=seed)
                sc = scorer.score([x for ts in texts for x in ts], batch_size=256)
                emt = np.array([s[scorer.main_label] for s in sc]).reshape(len(prompts), 6).max(1)
                out[name, prec, seed] = emt
                print(name, prec, seed, f"EMT {emt.mean():.3f}", f"{time.perf_counter() - t:.1f}s", flush=True)
        del m

    rng = np.random.default_rng(0)
    print("\nEMT - base (paired over prompts, same seed and precision), 95% bootstrap")
    for name in VARIANTS[1:]:
        line = [name]
        for prec in ["fp32", "bf16"]:
            for seed in seeds:
                m, lo, hi = delta_ci(out[name, prec, seed], out["base", prec, seed], rng)
                line.append(f"{prec}/s{seed} {m:+.3f}[{lo:+.3f},{hi:+.3f}]{'*' if hi < 0 or lo > 0 else ' '}")
        print("  ".join(line))
    print("\nper variant: EMT spread across fp32 seeds vs |mean bf16 - mean fp32|")
    for name in VARIANTS:
        f = [out[name, "fp32", s].mean() for s in seeds]
        b = [out[name, "bf16", s].mean() for s in seeds]
        print(name, f"fp32 {np.round(f, 3)} (range {max(f) - min(f):.3f})  bf16 {np.round(b, 3)} "
              f"(range {max(b) - min(b):.3f})  |mean diff| {abs(np.mean(b) - np.mean(f)):.3f}")


if __name__ == "__main__":
    main()
