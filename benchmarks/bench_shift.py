"""Time of the shift study per variant relative to one plain forward pass over the same data.

Builds base, a "full" (base with perturbed weights) and a LoRA variant of a tiny-config model,
then measures in the same process:
  forward  : one plain forward pass of the variant over the shift data (same batches);
  cold     : the study on the first variant (computes and caches base/full posteriors, ΔW SVDs);
  warm     : the study on a second variant (references from the cache) — the per-variant cost
             in a ladder. Target: warm / forward ≤ 1.5 (logit lens off; with the lens also shown).

    OMP_NUM_THREADS=1 python benchmarks/bench_shift.py --model llama-135m --n 16 --length 64
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="llama", help="tiny spec: llama, llama-135m, …")
    ap.add_argument("--n", type=int, default=16, help="sequences")
    ap.add_argument("--length", type=int, default=64, help="tokens per sequence")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    from peft import LoraConfig, get_peft_model

    from lorafair.models.tiny import build_tiny
    from lorafair.run.layout import variant_folder
    from lorafair.studies.base import EvalContext, VariantInfo
    from lorafair.studies.shift import ShiftConfig, ShiftStudy
    from lorafair.studies.shift.posteriors import make_batches

    dev = torch.device(args.device)
    base, tok = build_tiny(args.model)
    full, _ = build_tiny(args.model)
    with torch.no_grad():
        for n, p in full.named_parameters():
            if p.ndim == 2 and "embed" not in n:
                p += 0.01 * torch.randn_like(p)
    base.to(dev).eval()
    full.to(dev).eval()
    variants = []
    for seed, r in ((1, 8), (2, 16)):
        m, _ = build_tiny(args.model)
        torch.manual_seed(seed)
        pm = get_peft_model(m, LoraConfig(r=r, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False)).to(dev).eval()
        variants.append((VariantInfo(f"lora-r{r}", "lora", r), pm))
    text = "The quick brown fox jumps over the lazy dog while the committee debates the new policy. "
    records = [{"text": (text * 20)[i : i + args.length * 2]} for i in range(args.n)]
    batches = make_batches(tok, records, max_length=args.length, batch_size=args.batch_size)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def forward(model):
        sync()
        t = time.perf_counter()
        with torch.no_grad():
            for b in batches:
                model(input_ids=b.input_ids.to(dev), attention_mask=b.attention_mask.to(dev), use_cache=False)
        sync()
        return time.perf_counter() - t

    forward(variants[0][1])  # warm-up
    t_fwd = min(forward(variants[1][1]) for _ in range(2))
    run_dir = Path(tempfile.mkdtemp(prefix="bench_shift_"))

    # as in a run: the ladder's ranks are known, so ΔW_full is decomposed once for all variants
    run_config = SimpleNamespace(data=None, variants=SimpleNamespace(lora=SimpleNamespace(ranks=[8, 16])))

    shift = ShiftStudy()  # one per run, as the runner makes it: its reference cache is warm for later variants

    def study(variant, model, **cfg_kw):
        pm = model

        @contextlib.contextmanager
        def base_view():
            with pm.disable_adapter():
                yield pm

        cfg = ShiftConfig(max_length=args.length, batch_size=args.batch_size, n_boot=200, **cfg_kw)
        ctx = EvalContext(model=model, tokenizer=tok, device=dev, variant=variant, seed=0, out_dir=run_dir / variant_folder(variant.name, 0),
                          config=run_config, study_config=cfg, log=logging.getLogger("bench"), progress=False,
                          reference={"base": base, "full": full}.__getitem__, base_view=base_view)
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        ctx.heldout_data = records
        sync()
        t = time.perf_counter()
        shift.evaluate(ctx)
        sync()
        return time.perf_counter() - t

    t_cold = study(*variants[0], logit_lens=False, spectrum=False)
    t_warm = study(*variants[1], logit_lens=False, spectrum=False)
    n_lens = min(8, args.n)
    t_lens_cold = study(*variants[0], logit_lens=True, lens_max_sequences=n_lens, spectrum=False)
    t_lens = study(*variants[1], logit_lens=True, lens_max_sequences=n_lens, spectrum=False)
    t_spec_cold = study(*variants[0], logit_lens=False, spectrum=True)
    t_spec_warm = study(*variants[1], logit_lens=False, spectrum=True)
    n_params = sum(p.numel() for p in base.parameters())
    print(f"model tiny:{args.model} ({n_params / 1e6:.1f}M params) on {dev}, {len(records)} sequences x {args.length} tokens")
    print(f"plain forward pass (variant)       {t_fwd:8.3f} s")
    print(f"shift study, first variant (cold)  {t_cold:8.3f} s  ratio {t_cold / t_fwd:5.2f}")
    print(f"shift study, next variant (warm)   {t_warm:8.3f} s  ratio {t_warm / t_fwd:5.2f}   (target <= 1.5)")
    print(f"  + logit lens on {n_lens} sequences, first  {t_lens_cold:8.3f} s  ratio {t_lens_cold / t_fwd:5.2f}")
    print(f"  + logit lens on {n_lens} sequences, next   {t_lens:8.3f} s  ratio {t_lens / t_fwd:5.2f}   (base lens cached)")
    print(f"  + spectrum/angles, first variant {t_spec_cold:8.3f} s  ratio {t_spec_cold / t_fwd:5.2f}")
    print(f"  + spectrum/angles, next variant  {t_spec_warm:8.3f} s  ratio {t_spec_warm / t_fwd:5.2f}")


if __name__ == "__main__":
    main()
