"""Cost of the embedded models side by side: load (cached), one forward pass, the LM head's share, and the
shift study's vocabulary-wide work (log-posteriors and divergences, with lorafair's own code).

Per model (default both embedded models; the first load of one dequantises it into the cache, timed
separately as ``first load``):
  load         : ``load_model`` from the cache (seconds);
  fwd 1x128    : one forward pass of 1 × 128 tokens (median of 3);
  fwd 8x128    : 8 × 128 tokens; ``head share``: the same minus the decoder alone (``get_decoder()``), over it;
  logp         : ``rows_logp`` of 1,024 positions (log-softmax over the vocabulary) and its size in MiB: the
                 shift study's reference cache holds two of these (base, full) per scored token;
  divergences  : ``role_divergences`` for KL(v‖base), KL(full‖v), KL(full‖base) with the reverse KLs and JS
                 (the shift study's defaults) over the same 1,024 positions;
  peak RSS     : of the process so far (MiB).
With ``--shift N``: the shift study with its defaults (``max_sequences`` N) on N held-out BOLD Wikipedia
sentences, for base, a "full" variant (base with every q/up projection perturbed by a rank-2 update) and a
LoRA r8 variant (PEFT's random init of B), in one study instance as the runner uses it: seconds per
variant and per part (``info.seconds_by_part``), intruder counts, and the peak RSS.

    OMP_NUM_THREADS=2 python benchmarks/bench_embedded_models.py [--models gemma3-270m smollm2-135m-instruct] [--shift 16]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeat: int = 1) -> float:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "gemma3-270m"])
    ap.add_argument("--shift", type=int, default=0, metavar="N", help="also time the shift study on N sequences")
    ap.add_argument("--forgetting", action="store_true", help="also time the forgetting study with its defaults (one variant)")
    ap.add_argument("--shift-only", action="store_true", help="skip the forward/head/divergence timings (peak RSS of the studies alone)")
    ap.add_argument("--shift-batch-size", type=int, default=None, help="studies.shift.batch_size (default: the study's)")
    args = ap.parse_args()

    from lorafair.models.embedded import embedded_folder, installed, is_cached
    from lorafair.models.sources import load_model
    from lorafair.studies.shift import divergence as dv
    from lorafair.studies.shift.posteriors import rows_logp
    from lorafair.studies.shift.study import OPTIONAL_KINDS, ROLE_PAIRS

    torch.manual_seed(0)
    print(f"torch threads {torch.get_num_threads()}")
    for name in args.models:
        if not installed(name) and not is_cached(name):
            print(f"{name}: not installed, skipped")
            continue
        if not is_cached(name):
            print(f"{name}: first load (assemble/dequantise into the cache) {timed(lambda: embedded_folder(name)):.1f} s")
        box = {}
        t_load = timed(lambda: box.update(m=load_model(f"embedded:{name}")))
        model, tok = box["m"]
        if args.forgetting:
            forgetting_study(model, tok, name)
        if args.shift_only:
            print(f"{name}: load {t_load:.1f} s, peak RSS {peak_mib():.0f} MiB", flush=True)
            if args.shift:
                shift_study(model, tok, name, args.shift, args.shift_batch_size)
            continue
        V = model.config.vocab_size
        ids1 = torch.randint(100, 10000, (1, 128))
        ids8 = torch.randint(100, 10000, (8, 128))
        with torch.no_grad():
            model(input_ids=ids1)  # warm-up
            f1 = timed(lambda: model(input_ids=ids1), 3)
            f8 = timed(lambda: model(input_ids=ids8), 2)
            dec = model.get_decoder()
            d8 = timed(lambda: dec(input_ids=ids8), 2)
            idx = torch.arange(8 * 128)
            logits_a = model(input_ids=ids8).logits
            logits_b = model(input_ids=ids8.flip(1)).logits
            logits_c = model(input_ids=ids8.roll(3, 1)).logits
            box2 = {}
            t_logp = timed(lambda: box2.update(v=rows_logp(logits_a, idx, torch.float32)))
            lp = {"v": box2["v"], "base": rows_logp(logits_b, idx, torch.float32), "full": rows_logp(logits_c, idx, torch.float32)}
            del logits_a, logits_b, logits_c
            kinds = ("kl",) + OPTIONAL_KINDS
            rows = dv.chunk_rows(V, torch.device("cpu"))
            t_div = timed(lambda: dv.role_divergences(lp, ROLE_PAIRS, kinds, rows=rows))
        mib = lp["v"].element_size() * lp["v"].nelement() / 2**20
        print(f"{name}: vocab {V:,}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters | load {t_load:.1f} s | "
              f"fwd 1x128 {f1:.3f} s | fwd 8x128 {f8:.2f} s, decoder alone {d8:.2f} s, head share {(f8 - d8) / f8:.0%} | "
              f"logp of 1,024 positions {t_logp:.2f} s, {mib:.0f} MiB | divergences (7 rows, 1,024 positions) {t_div:.2f} s | "
              f"peak RSS {peak_mib():.0f} MiB", flush=True)
        del lp, box2
        if args.shift:
            shift_study(model, tok, name, args.shift, args.shift_batch_size)
        del model, box


def forgetting_study(model, tok, name: str) -> None:
    """The forgetting study with its defaults (100 held-out BOLD Wikipedia sentences) on one variant."""
    import logging
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace

    from lorafair.studies.base import STUDIES, EvalContext, VariantInfo

    cls = STUDIES.get("forgetting")
    with tempfile.TemporaryDirectory() as tmp:
        ctx = EvalContext(model=model, tokenizer=tok, device=torch.device("cpu"), variant=VariantInfo("base", "base", None),
                          seed=0, out_dir=Path(tmp), config=SimpleNamespace(data=None), study_config=cls.Config(),
                          log=logging.getLogger("bench"), progress=False)
        t = time.perf_counter()
        res = cls().evaluate(ctx)
        dt = time.perf_counter() - t
    loss = next(r for r in res.metrics if r.metric == "loss")
    print(f"{name} forgetting (defaults): {dt:.1f} s for {res.info['texts']} texts, {res.info['tokens']} tokens; "
          f"loss {loss.value:.3f} [{loss.ci_low:.3f}, {loss.ci_high:.3f}]", flush=True)


def shift_study(model, tok, name: str, n: int, batch_size=None) -> None:
    import copy
    import logging
    import tempfile
    from pathlib import Path
    from types import SimpleNamespace

    from peft import LoraConfig, get_peft_model

    from lorafair.data.options import load_spec
    from lorafair.data.registry import DataContext
    from lorafair.studies.base import EvalContext, VariantInfo
    from lorafair.studies.shift import ShiftConfig, ShiftStudy

    records = load_spec({"source": "bold-wiki", "options": {"split": "eval"}, "limit": n}, DataContext(seed=0), "data")
    full = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for pname, p in full.named_parameters():
            if pname.endswith(("q_proj.weight", "up_proj.weight")):
                p += 0.05 * torch.randn(p.shape[0], 2, generator=g) @ torch.randn(2, p.shape[1], generator=g) / p.shape[1] ** 0.5
    lora = get_peft_model(copy.deepcopy(model), LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False))
    lora.eval()
    cfg = ShiftConfig(max_sequences=n, **({"batch_size": batch_size} if batch_size else {}))
    print(f"shift study: max_sequences {cfg.max_sequences}, batch_size {cfg.batch_size}, max_length {cfg.max_length}")
    study = ShiftStudy()
    with tempfile.TemporaryDirectory() as tmp:
        for vname, method, rank, m in (("base", "base", None, model), ("full", "full", None, full), ("lora-r8", "lora", 8, lora)):
            out = Path(tmp) / f"{vname}-s0"
            out.mkdir()
            ctx = EvalContext(model=m, tokenizer=tok, device=torch.device("cpu"), variant=VariantInfo(vname, method, rank),
                              seed=0, out_dir=out, config=SimpleNamespace(data=None), study_config=cfg,
                              log=logging.getLogger("bench"), progress=False,
                              reference={"base": model, "full": full}.__getitem__, heldout_data=records,
                              base_view=lora.disable_adapter if m is lora else None)
            t = time.perf_counter()
            res = study.evaluate(ctx)
            dt = time.perf_counter() - t
            rows = {r.metric: r.value for r in res.metrics if not r.group}
            parts = ", ".join(f"{k} {v:.1f}" for k, v in res.info["seconds_by_part"].items())
            print(f"{name} shift {vname}: {dt:.1f} s ({parts}); {res.info['n_tokens']} scored tokens; kl_v_base "
                  f"{rows['kl_v_base']:.4f}; intruders {rows.get('intruders', float('nan')):g}; peak RSS {peak_mib():.0f} MiB",
                  flush=True)


if __name__ == "__main__":
    main()
