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

    OMP_NUM_THREADS=2 python benchmarks/bench_embedded_models.py [--models gemma3-270m smollm2-135m-instruct]
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
        del model, lp, box, box2


if __name__ == "__main__":
    main()
