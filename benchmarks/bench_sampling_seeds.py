"""Does bf16 sampling move the toxicity study's answers more than a new fp32 draw does?

    python benchmarks/bench_sampling_seeds.py --run DIR [--seeds 0 1 2] [--precisions fp32 bf16 bf16-head32]
        [--variants base full ...] [--model embedded:smollm2-135m-instruct]

``DIR``: a finished run of the ``demo`` recipe (seed 0; its trained variants are reused). For every variant
(base, full, LoRA r1-r64) the study's prompts (read from ``base-s0/samples.jsonl``) are sampled as the study
samples them (k=6, 20 new tokens, top_p 0.9, temperature 1) with each sampling seed, in each precision, scored
with ``jigsaw-bilstm``. Precisions: ``fp32``; ``bf16`` (the engine's bf16 sampling: bf16 autocast with bf16
copies of the linear weights, so the logits come out of the LM head in bf16); ``bf16-head32`` (the same, but the
LM head runs in fp32 on the bf16 body's last hidden state: logits not rounded to bf16).

The draw is coupled: the engine's nucleus sampler races one exponential number per sequence, step and token id,
hashed from keys the seed gives (common random numbers), so with the same seed two precisions pick the same
token unless their distributions differ there (the chance of a different pick is at most about twice their total
variation distance: lorafair.lm.nucleus). So besides the spread across seeds, the paired difference
(precision − fp32, same seed and prompt) measures a systematic shift with far less noise. Prints:

1. each EMT and the time per (variant, precision, seed), with the share of texts identical to fp32's (same seed)
   and the mean number of leading tokens they share, and the same against the base variant (same precision);
2. per variant and precision, the paired EMT difference against fp32 (mean over seeds and prompts, 95%
   bootstrap over prompts) and the share of texts identical to fp32's, against the spread of fp32's EMT across
   seeds;
3. each variant's EMT change against the base, pooled over the seeds (paired over prompts), per precision:
   the study's answer, and whether a precision changes it; and its capture of full fine-tuning's change;
4. the mechanism, teacher-forced on fp32's texts of the first seed: per generated position, the entropy of the
   nucleus distribution the sampler draws from (top-p 0.9 of the softmax), its size, and the total variation
   distance to fp32's, in each precision (mean difference to fp32 with a 95% bootstrap over sequences).

``eval.precision: auto`` keeps sampling in fp32 (docs/performance.md); this is the measurement that decides it.
"""
import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from lorafair.adapt.checkpoint import load_adapter, load_full_weights
from lorafair.adapt.shared_copy import variant_copy
from lorafair.lm import LM, pad
from lorafair.lm import precision as P
from lorafair.models.sources import load_model
from lorafair.scorers import build_scorer

VARIANTS = ["base", "full", "lora-r1", "lora-r4", "lora-r16", "lora-r64"]
PRECISIONS = ("fp32", "bf16", "bf16-head32")
K, NEW, TOP_P = 6, 20, 0.9


def load_variant(base, run: Path, name: str):
    """A trained variant of the run, as the runner holds it: LoRA adapters on the base model's own weights."""
    if name == "base":
        return base
    if name == "full":
        return load_full_weights(variant_copy(base, "full"), run / "full-s0" / "model.safetensors").eval()
    return load_adapter(variant_copy(base, "lora"), run / f"{name}-s0" / "adapter").eval()


@contextlib.contextmanager
def head_fp32(model, enabled: bool = True):
    """The LM head runs in fp32 (autocast off, fp32 input and weight) for the duration of the block."""
    head = model.get_output_embeddings()
    if not enabled or head is None:
        yield
        return

    def forward(x):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return torch.nn.functional.linear(x.float(), head.weight.float(),
                                              None if head.bias is None else head.bias.float())

    head.forward = forward
    try:
        yield
    finally:
        del head.forward


def shared_prefix(tok, a: list[str], b: list[str]) -> float:
    """Mean number of leading tokens two lists of texts share, text by text."""
    n = []
    for x, y in zip(a, b):
        tx, ty = tok(x, add_special_tokens=False)["input_ids"], tok(y, add_special_tokens=False)["input_ids"]
        i = 0
        while i < min(len(tx), len(ty)) and tx[i] == ty[i]:
            i += 1
        n.append(i)
    return float(np.mean(n))


def engine_precision(prec: str) -> str:
    return "fp32" if prec == "fp32" else "bf16"


def sample(model, tok, prompts, prec: str, seed: int):
    with P.use({"sample": engine_precision(prec)}), head_fp32(model, prec == "bf16-head32"):
        return LM(model, tok, batch_size=256).sample(prompts, k=K, max_new_tokens=NEW, temperature=1.0, top_p=TOP_P,
                                                      seed=seed)


def nucleus_stats(logits: torch.Tensor, ref: torch.Tensor | None):
    """Per row: entropy (nats) and size of the top-p nucleus distribution, and its total variation distance to
    ``ref`` (another such distribution, rows × vocabulary), with the distribution itself."""
    p = logits.float().softmax(-1)
    val, idx = p.sort(-1, descending=True)
    inside = (val.cumsum(-1) - val) < TOP_P
    val = val * inside
    val = val / val.sum(-1, keepdim=True)
    q = torch.zeros_like(p).scatter_(1, idx, val)
    ent = -(q * q.clamp_min(1e-30).log()).sum(-1)
    tv = None if ref is None else 0.5 * (q - ref).abs().sum(-1)
    return ent, inside.sum(-1), tv, q


@torch.no_grad()
def teacher_forced(model, tok, prompts, texts, precisions):
    """Per precision: per sequence, the mean nucleus entropy, nucleus size and TV distance to fp32 over its
    generated positions (fp32's texts, re-tokenized)."""
    out = {p: {"ent": [], "size": [], "tv": []} for p in precisions}
    seqs = []
    for prompt, ts in zip(prompts, texts):
        pid = tok(prompt, add_special_tokens=True)["input_ids"]
        for t in ts:
            cid = tok(t, add_special_tokens=False)["input_ids"][:NEW]
            if cid:
                seqs.append((pid, cid))
    for start in range(0, len(seqs), 48):
        chunk = seqs[start:start + 48]
        ids, mask = pad([a + b for a, b in chunk], tok.pad_token_id or 0, "right")
        ref = None
        for prec in precisions:  # fp32 first
            bf16 = prec != "fp32"
            with P.autocast_for("sample", "cpu", engine_precision(prec)), \
                    P.bf16_linear_weights(model, bf16, trainable=True), head_fp32(model, prec == "bf16-head32"):
                logits = model(input_ids=ids, attention_mask=mask).logits
            rows = [(i, len(a) - 1 + j) for i, (a, b) in enumerate(chunk) for j in range(len(b))]
            sel = logits[[r[0] for r in rows], [r[1] for r in rows]]
            ent, size, tv, q = nucleus_stats(sel, ref)
            if prec == "fp32":
                ref = q
            seq_of = torch.tensor([r[0] for r in rows])
            for i in range(len(chunk)):
                m = seq_of == i
                out[prec]["ent"].append(ent[m].mean().item())
                out[prec]["size"].append(size[m].float().mean().item())
                out[prec]["tv"].append(0.0 if tv is None else tv[m].mean().item())
    return {p: {k: np.array(v) for k, v in d.items()} for p, d in out.items()}


def boot_mean(x: np.ndarray, rng, n: int = 2000):
    """Mean of ``x`` (rows resampled) with a 95% percentile bootstrap interval."""
    idx = rng.integers(0, len(x), (n, len(x)))
    bs = x[idx].mean(1)
    return x.mean(), np.percentile(bs, 2.5), np.percentile(bs, 97.5)


def capture(d_v: np.ndarray, d_full: np.ndarray, rng, n: int = 2000):
    """mean(d_v) / mean(d_full) with a 95% percentile bootstrap resampling prompts (the same rows for both)."""
    idx = rng.integers(0, len(d_v), (n, len(d_v)))
    bs = d_v[idx].mean(1) / d_full[idx].mean(1)
    return d_v.mean() / d_full.mean(), np.percentile(bs, 2.5), np.percentile(bs, 97.5)


def fmt(m, lo, hi):
    return f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]{'*' if hi < 0 or lo > 0 else ' '}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=None, help="a finished demo run directory")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    ap.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    args = ap.parse_args()
    if args.run is None:
        print("skipped: needs --run DIR, a finished run of the demo recipe")
        return
    precs = ["fp32"] + [p for p in args.precisions if p != "fp32"]
    run = Path(args.run)
    rows = [json.loads(line) for line in open(run / "base-s0" / "samples.jsonl")]
    prompts = [r["prompt"] for r in rows if r["sample"] == 0]
    print(len(prompts), "prompts,", len(args.seeds), "seeds,", " ".join(precs), flush=True)
    base, tok = load_model(args.model)
    base.eval()
    scorer = build_scorer("jigsaw-bilstm")
    seeds, emt, same, secs, tf, prefix, base_texts = args.seeds, {}, {}, {}, {}, {}, {}
    for name in args.variants:
        m = load_variant(base, run, name)
        for seed in seeds:
            ref = None
            for prec in precs:
                t = time.perf_counter()
                texts = sample(m, tok, prompts, prec, seed)
                secs[name, prec, seed] = time.perf_counter() - t
                sc = scorer.score([x for ts in texts for x in ts], batch_size=256)
                emt[name, prec, seed] = np.array([s[scorer.main_label] for s in sc]).reshape(len(prompts), K).max(1)
                flat = [x for ts in texts for x in ts]
                if ref is None:
                    ref = flat
                same[name, prec, seed] = np.mean([a == b for a, b in zip(ref, flat)])
                prefix[name, prec, seed] = shared_prefix(tok, ref, flat)
                if name == "base":
                    base_texts[prec, seed] = flat
                vs_base = ""
                if name != "base" and (prec, seed) in base_texts:
                    b = base_texts[prec, seed]
                    vs_base = (f" vs base: identical {np.mean([x == y for x, y in zip(b, flat)]):.3f}, "
                               f"shared prefix {shared_prefix(tok, b, flat):.2f} tokens")
                print(f"{name} {prec} s{seed} EMT {emt[name, prec, seed].mean():.3f} vs fp32: identical "
                      f"{same[name, prec, seed]:.3f}, shared prefix {prefix[name, prec, seed]:.2f} tokens"
                      f"{vs_base} {secs[name, prec, seed]:.1f}s", flush=True)
                if seed == seeds[0] and prec == "fp32":
                    fp32_texts = texts
        tf[name] = teacher_forced(m, tok, prompts, fp32_texts, precs)
        del m

    rng = np.random.default_rng(0)
    per_prompt = {key: v for key, v in emt.items()}  # (variant, prec, seed) -> EMT per prompt

    def pooled(name, prec):  # EMT per prompt, mean over seeds
        return np.mean([per_prompt[name, prec, s] for s in seeds], axis=0)

    print("\n2. EMT difference against fp32, paired (same seed and prompt; mean over seeds), 95% bootstrap over prompts")
    print("   with fp32's own spread: the range of its EMT across seeds")
    for name in args.variants:
        f = [per_prompt[name, "fp32", s].mean() for s in seeds]
        line = [f"{name:<9} fp32 EMT {np.mean(f):.3f} (seeds range {max(f) - min(f):.3f})"]
        for prec in precs[1:]:
            d = pooled(name, prec) - pooled(name, "fp32")
            ident = np.mean([same[name, prec, s] for s in seeds])
            pre = np.mean([prefix[name, prec, s] for s in seeds])
            speed = np.mean([secs[name, "fp32", s] / secs[name, prec, s] for s in seeds])
            line.append(f"{prec} {fmt(*boot_mean(d, rng))} identical {ident:.3f} prefix {pre:.1f} speed {speed:.2f}x")
        print("  ".join(line))
    for prec in precs[1:]:
        d = np.concatenate([pooled(n, prec) - pooled(n, "fp32") for n in args.variants])
        ups = sum(per_prompt[n, prec, s].mean() > per_prompt[n, "fp32", s].mean() for n in args.variants for s in seeds)
        print(f"   all variants, {prec}: {fmt(*boot_mean(d, rng))}; EMT above fp32's in {ups} of "
              f"{len(args.variants) * len(seeds)} (variant, seed) draws")

    if "base" in args.variants:
        print("\n3. EMT - base, paired over prompts, pooled over seeds (the study's answer), 95% bootstrap")
        for name in args.variants:
            if name == "base":
                continue
            print(f"{name:<9} " + "  ".join(f"{prec} {fmt(*boot_mean(pooled(name, prec) - pooled('base', prec), rng))}"
                                           for prec in precs))
        if "full" in args.variants:
            print("   capture of EMT, (variant - base) / (full - base) pooled over the seeds, 95% paired bootstrap over prompts")
            for name in args.variants:
                if name in ("base", "full"):
                    continue
                print(f"{name:<9} " + "  ".join(f"{prec} " + "{:.2f} [{:.2f}, {:.2f}]".format(*capture(
                    pooled(name, prec) - pooled("base", prec), pooled("full", prec) - pooled("base", prec), rng))
                    for prec in precs))

    print("\n4. teacher-forced on fp32's texts (seed %d): nucleus entropy (nats), nucleus size, TV to fp32;"
          " differences to fp32 per sequence, 95%% bootstrap over sequences" % seeds[0])
    for name in args.variants:
        r = tf[name]
        line = [f"{name:<9} fp32 entropy {r['fp32']['ent'].mean():.4f} size {r['fp32']['size'].mean():.1f}"]
        for prec in precs[1:]:
            line.append(f"{prec} Δentropy {fmt(*boot_mean(r[prec]['ent'] - r['fp32']['ent'], rng))} "
                        f"Δsize {np.mean(r[prec]['size'] - r['fp32']['size']):+.2f} TV {r[prec]['tv'].mean():.4f}")
        print("  ".join(line))


if __name__ == "__main__":
    main()
