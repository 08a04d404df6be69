"""Time of the shift study per variant of a finished run, relative to one plain forward pass of the same
variant over the same shift data (the issue's target: ≤ 1.5× per variant in a ladder).

Loads the run's base model, its trained variants and its held-out records (``RUN/data``), then for each
variant in ladder order (base, full, LoRA …), in one process:
  forward : a plain forward pass of the variant over the shift batches (best of 2);
  study   : ShiftStudy.evaluate with the run's own ``studies.shift`` config (written to a temporary
            folder, the run directory is not touched); ``--no-lens`` / ``--no-spectrum`` switch parts off.
The base and full variants fill the reference cache (base/full posteriors, KL(full‖base), the base's
logit lens); the LoRA variants are the per-variant cost of a ladder.

    OMP_NUM_THREADS=2 python benchmarks/bench_shift_run.py runs/demo
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-lens", action="store_true", help="logit_lens: false")
    ap.add_argument("--no-spectrum", action="store_true", help="spectrum: false")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a studies.shift field (YAML value)")
    args = ap.parse_args()

    from lorafair.config.load import load_config
    from lorafair.methods import adapters_off_is_base
    from lorafair.run.layout import variant_folder
    from lorafair.run.runner import Runner
    from lorafair.studies.base import EvalContext, VariantInfo
    from lorafair.studies.shift import ShiftConfig, ShiftStudy
    from lorafair.studies.shift.posteriors import make_batches

    cfg = load_config(str(args.run_dir / "config.yaml"))
    runner = Runner(cfg, args.run_dir, quiet=True)
    base, tok = runner.load_base()
    base.eval()
    _, heldout = runner.data_for_seed(args.seed, lambda: (base, tok))
    scfg = cfg.studies.get("shift")
    scfg = ShiftConfig.model_validate(scfg.model_dump() if scfg is not None else {})
    update = {"logit_lens": scfg.logit_lens and not args.no_lens, "spectrum": scfg.spectrum and not args.no_spectrum}
    update.update({k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)})
    scfg = ShiftConfig.model_validate({**scfg.model_dump(), **update})
    records = heldout[: scfg.max_sequences]
    batches = make_batches(tok, records, max_length=scfg.max_length, batch_size=scfg.batch_size)
    dev = runner.device

    def forward(model) -> float:
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            with torch.no_grad():
                for b in batches:
                    model(input_ids=b.input_ids.to(dev), attention_mask=b.attention_mask.to(dev), use_cache=False)
            best = min(best, time.perf_counter() - t)
        return best

    tmp = Path(tempfile.mkdtemp(prefix="bench_shift_run_"))
    n_tok = sum(int(b.score_mask.sum()) for b in batches)
    print(f"{args.run_dir}: {cfg.model.source}, {len(records)} sequences, {n_tok} scored tokens; "
          f"logit_lens={scfg.logit_lens} ({scfg.lens_positions} positions of {scfg.lens_max_sequences} sequences), spectrum={scfg.spectrum}")
    print(f"{'variant':12s} {'forward s':>9s} {'study s':>8s} {'ratio':>6s}  kl_full_v  capture (point)")
    kl_full_base = float("nan")
    study = ShiftStudy()  # one per run, as the runner makes it (its reference cache serves every variant)
    for v in runner.variants:
        model = runner.reference(base, args.seed, "full") if v.method == "full" else runner.load_variant(base, v, args.seed)
        base_view = model.disable_adapter if hasattr(model, "disable_adapter") and adapters_off_is_base(v.method) else None
        t_fwd = forward(model)
        out = tmp / variant_folder(v.name, args.seed)
        out.mkdir(parents=True, exist_ok=True)
        ctx = EvalContext(model=model, tokenizer=tok, device=dev, variant=VariantInfo(v.name, v.method, v.rank), seed=args.seed,
                          out_dir=out, config=cfg, study_config=scfg, log=runner.log, progress=False,
                          reference=lambda n: runner.reference(base, args.seed, n), base_view=base_view, heldout_data=heldout)
        t = time.perf_counter()
        with torch.no_grad():
            res = study.evaluate(ctx)
        t_study = time.perf_counter() - t
        m = {r.metric: r.value for r in res.metrics if not r.group}
        if v.method == "base":
            kl_full_base = m["kl_full_v"]
        capture = 1 - m["kl_full_v"] / kl_full_base if kl_full_base > 0 else float("nan")
        parts = "  ".join(f"{k} {x:.2f}" for k, x in res.info["seconds_by_part"].items())
        print(f"{v.name:12s} {t_fwd:9.2f} {t_study:8.2f} {t_study / t_fwd:6.2f}  {m['kl_full_v']:9.4f}  {capture:10.3f}   {parts}")
    print(f"reference cache: {study.reference_cache.used / 2**20:.0f} MiB, hits {study.reference_cache.hits}, misses {study.reference_cache.misses}, "
          f"not kept {study.reference_cache.skipped}")


if __name__ == "__main__":
    main()
