"""``lorafair spectrum BASE FULL``: spectrum of the update ΔW = W_full − W_base of two checkpoints.

Per linear module: singular values, energy fraction captured by the best rank-r approximation for
each ``--ranks`` r, and the effective rank (Roy & Vetterli 2007). See
:mod:`lorafair.studies.shift.spectrum`.
"""

from __future__ import annotations

import argparse
import json
import sys

from lorafair.errors import UserError

NAME = "spectrum"
HELP = "singular-value spectrum of W_full − W_base per module (how much rank the shift needs)"
DESCRIPTION = (
    "Compare two checkpoints of the same architecture (model sources as anywhere else: hf:/path, tiny:llama, "
    "embedded:…): per linear module, the singular values of ΔW = W_full − W_base, the energy captured by the "
    "best rank-r approximation for each requested r, and the entropy effective rank."
)
ORDER = 70


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", metavar="BASE_MODEL", help="model source of the base checkpoint, e.g. hf:/path/to/base")
    p.add_argument("full", metavar="FULL_MODEL", help="model source of the fine-tuned checkpoint")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128, 256], help="ranks r at which to report energy")
    p.add_argument("--json", action="store_true", help="print JSON, one entry per module")
    p.add_argument("--float64", action="store_true", help="compute singular values in float64 (default float32)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom model code (off by default)")


def run(args) -> int:
    import torch

    from lorafair.models.sources import load_model
    from lorafair.studies.shift.spectrum import summarise_spectra, update_spectrum

    bad = [r for r in args.ranks if r < 1]
    if bad:
        raise UserError("--ranks", bad[0], "integers >= 1")
    ranks = sorted(set(args.ranks))
    base, _ = load_model(args.base, trust_remote_code=args.trust_remote_code)
    full, _ = load_model(args.full, trust_remote_code=args.trust_remote_code)
    if type(base).__name__ != type(full).__name__:
        raise UserError.plain(
            f"the two models have different architectures: {type(base).__name__} vs {type(full).__name__}"
        )
    dec = update_spectrum(base, full, ranks, dtype=torch.float64 if args.float64 else torch.float32)
    if args.json:
        json.dump({"ranks": ranks, "modules": [
            {k: v for k, v in s.as_dict().items() if k in ("name", "shape", "singular_values", "energy", "effective_rank", "fro_norm", "rel_norm")}
            for s in dec.spectra
        ]}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    summary = summarise_spectra(dec.spectra)["by_type"]
    head = ["module type", "n", "eff.rank", "‖ΔW‖/‖W‖"] + [f"E@{r}" for r in ranks]
    table = [head]
    for mtype, s in summary.items():
        table.append([mtype, str(s["n_modules"]), f"{s['effective_rank']:.1f}", f"{s['rel_norm']:.3g}"]
                     + [f"{s['energy'][str(r)]:.3f}" for r in ranks])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    print(f"ΔW = W_full − W_base, {len(dec.spectra)} linear modules; E@r = energy of the best rank-r approximation (mean over modules)")
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if all(s.fro_norm == 0 for s in dec.spectra):
        print("note: the two checkpoints have identical linear weights (ΔW = 0)")
    return 0
