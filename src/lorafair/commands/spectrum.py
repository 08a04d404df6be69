"""``lorafair spectrum BASE FULL``: spectrum of the update ΔW = W_full − W_base of two checkpoints.

Per linear module: singular values, energy fraction captured by the best rank-r approximation for
each ``--ranks`` r, and the effective rank (Roy & Vetterli 2007). See
:mod:`lorafair.studies.shift.spectrum`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lorafair.errors import UserError

NAME = "spectrum"
HELP = "singular-value spectrum of W_full − W_base per module (how much rank the shift needs)"
DESCRIPTION = (
    "Compare two checkpoints of the same architecture (model sources as anywhere else: hf:/path, tiny:llama, "
    "embedded:…): per linear module, the singular values of ΔW = W_full − W_base, the energy captured by the "
    "best rank-r approximation for each requested r, and the entropy effective rank."
)
ORDER = 70


def _rank(s: str) -> int | str:
    """A --ranks entry as an int; other text is kept for run() to report as ``error: --ranks=…``."""
    try:
        return int(s)
    except ValueError:
        return s


def _refield(e: UserError, field: str) -> UserError:
    """A model-source error of load_model, named after this command's argument instead."""
    if e.field == "model.source" and e.allowed:
        return UserError(field, e.value, e.allowed)
    return e


def load_weights(source: str, field: str, *, trust_remote_code: bool = False):
    """The model of a model source, in eval mode on the CPU, without its tokenizer: the spectrum
    needs only the weights, and a checkpoint folder (e.g. one ``save_pretrained`` of a fine-tune)
    often has no tokenizer files. Local ``hf:`` folders load here (safetensors only); every other
    source goes through :func:`lorafair.models.sources.load_model`."""
    from lorafair.models.sources import load_model

    kind, sep, arg = source.partition(":")
    folder = Path(arg).expanduser() if kind == "hf" and sep and arg else None
    if folder is None or not folder.exists():
        try:
            model, _ = load_model(source, trust_remote_code=trust_remote_code)
        except UserError as e:
            raise _refield(e, field) from None
        return model
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise UserError(field, source, "a folder with config.json and model weights")
    if not any(folder.glob("*.safetensors")):
        pickle_only = any(folder.glob("*.bin")) or any(folder.glob("*.pt"))
        raise UserError(field, source, "a folder with safetensors weights (*.safetensors)"
                        + (" (this one has only pickle .bin/.pt weights, which spectrum does not load)" if pickle_only else ""))
    from lorafair.models import sources

    check = getattr(sources, "check_config_json", None)  # UTF-8 JSON, a known causal-LM model_type …
    if check is not None:
        check(folder, field, source, trust_remote_code)
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=trust_remote_code,
                                                     use_safetensors=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError) as e:  # e.g. a truncated file
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(field, source, f"a folder whose weights transformers can load ({first})") from None
    return model.eval()


def _json_safe(obj):
    """NaN / inf (e.g. the energy of a zero update) as null: the output stays valid JSON."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", metavar="BASE_MODEL", help="model source of the base checkpoint, e.g. hf:/path/to/base")
    p.add_argument("full", metavar="FULL_MODEL", help="model source of the fine-tuned checkpoint")
    p.add_argument("--ranks", type=_rank, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128, 256], help="ranks r at which to report energy")
    p.add_argument("--json", action="store_true", help="print JSON, one entry per module")
    p.add_argument("--float64", action="store_true", help="compute singular values in float64 (default float32)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom model code (off by default)")


def run(args) -> int:
    import torch

    from lorafair.studies.shift.spectrum import linear_weights, summarise_spectra, update_spectrum

    bad = [r for r in args.ranks if isinstance(r, str) or r < 1]
    if bad:
        raise UserError("--ranks", bad[0], "integers >= 1")
    ranks = sorted(set(args.ranks))
    from lorafair.run.logs import quiet_libraries

    quiet_libraries(not sys.stderr.isatty())  # no progress bars in logs and pipes (as `lorafair run`)
    base = load_weights(args.base, "BASE_MODEL", trust_remote_code=args.trust_remote_code)
    full = load_weights(args.full, "FULL_MODEL", trust_remote_code=args.trust_remote_code)
    if type(base).__name__ != type(full).__name__:
        raise UserError.plain(
            f"the two models have different architectures: {type(base).__name__} vs {type(full).__name__}"
        )
    for model, field, source in ((base, "BASE_MODEL", args.base), (full, "FULL_MODEL", args.full)):
        for name, w in linear_weights(model).items():
            if not bool(torch.isfinite(w).all()):
                raise UserError(field, source, f"a checkpoint with finite weights ({name} holds NaN or inf)")
    try:
        dec = update_spectrum(base, full, ranks, dtype=torch.float64 if args.float64 else torch.float32)
    except torch.linalg.LinAlgError as e:  # NaN or inf in a weight: no SVD
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError.plain(f"the checkpoints' weights have no singular values (non-finite values?): {first}") from None
    if args.json:
        json.dump(_json_safe({"ranks": ranks, "modules": [
            {k: v for k, v in s.as_dict().items() if k in ("name", "shape", "singular_values", "energy", "effective_rank", "fro_norm", "rel_norm")}
            for s in dec.spectra
        ]}), sys.stdout, indent=1, allow_nan=False)
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
