"""``lorafair eval BASE [--full SRC] [--adapter NAME=SRC ...] --studies S1,S2``: audit fine-tunes made elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

NAME = "eval"
ORDER = 3
HELP = "evaluate fine-tunes made elsewhere (PEFT adapters, full checkpoints) against their base, no training"
DESCRIPTION = """Evaluate existing fine-tunes of BASE without training anything: the base model, an optional full
fine-tune (--full, the `full` reference of capture ratios) and any number of PEFT adapters (--adapter), on
every study of --studies, exactly as `lorafair run` evaluates the variants it trains (the same items, the
same random numbers; metrics.csv with paired capture_<m> / delta_<m> rows, the report, the recommendation
when adapters are named <method>-r<rank>).

The recipe it builds (variants.external) is the run's config.yaml: extend it (more studies, adapters, seeds)
and run it into the same directory with `lorafair run OUT/config.yaml --out OUT`; what is done is reused.

Sources: an adapter is a PEFT folder (adapter_config.json + adapter_model.safetensors; method and rank are
read from it); a full checkpoint is hf:<folder or hub id> (config.json + *.safetensors) of BASE's
architecture. Safetensors only unless --set model.allow_pickle=true; no remote code runs.

examples:
  lorafair eval hf:meta-llama/Llama-3.2-1B --full hf:./my-full --adapter lora-r8=./my-lora-r8 \\
      --adapter lora-r64=./my-lora-r64 --studies toxicity,stereotypes --out runs/audit
  lorafair eval tiny:llama --adapter ./adapter --studies stereotypes --set studies.stereotypes.limit.crows=20
"""

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")


def add_arguments(p):
    import argparse

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("base", metavar="BASE", help="the base model source (hf:<folder or hub id>, embedded:…, tiny:…)")
    p.add_argument("--full", metavar="SRC", help="a full fine-tune of BASE (hf:<folder or hub id>): the full reference")
    p.add_argument("--adapter", action="append", default=[], metavar="[NAME=]SRC",
                   help="a PEFT adapter folder, repeatable; NAME defaults to the folder's name (name it "
                   "<method>-r<rank>, e.g. lora-r8, to put it on the rank ladder)")
    p.add_argument("--studies", required=True, metavar="S1,S2", help="comma-separated studies (see `lorafair studies`)")
    p.add_argument("--name", default="eval", help="the run's name (default eval; the default --out is runs/<name>)")
    from lorafair.commands.run import add_common

    add_common(p)


def _adapter_entry(item: str) -> dict:
    from lorafair.errors import UserError

    name, sep, src = item.partition("=")
    if not sep or not _NAME_OK.match(name):  # SRC alone (a path may hold '=')
        src = item
        name = re.sub(r"[^A-Za-z0-9._+-]+", "-", Path(item.rstrip("/")).name).lstrip("._+-")[:100]
        if not name:
            raise UserError("--adapter", item, "[NAME=]SRC with SRC a PEFT adapter folder")
    return {"name": name, "source": src}


def _full_source(src: str) -> str:
    """``hf:`` added to a local folder given without it (a full checkpoint is an hf: source)."""
    if ":" not in src.split("/")[0] and Path(src).expanduser().is_dir():
        return f"hf:{src}"
    return src


def build_recipe(args) -> dict:
    """The recipe of the command line: the base and the external variants, no training, the studies."""
    from lorafair.errors import UserError

    studies = [s.strip() for s in args.studies.split(",") if s.strip()]
    if not studies:
        raise UserError("--studies", args.studies, "comma-separated study names (see `lorafair studies`)")
    external = []
    if args.full:
        external.append({"name": "full", "source": _full_source(args.full), "role": "full"})
    adapters = [_adapter_entry(a) for a in args.adapter]
    names = [a["name"] for a in adapters]
    dup = next((n for n in names if names.count(n) > 1 or n in ("base", "full")), None)
    if dup is not None:
        raise UserError("--adapter", next(a for a in reversed(args.adapter) if _adapter_entry(a)["name"] == dup),
                        f"distinct adapter names other than base and full ({dup!r} is taken: give NAME=SRC)")
    external += adapters
    if not external:
        raise UserError("--adapter", None, message="--full or --adapter: expected at least one fine-tune to evaluate")
    return {
        "name": args.name,
        "description": f"audit of fine-tunes of {args.base} (lorafair eval)",
        "model": {"source": args.base},
        "variants": {"base": True, "external": external},
        "studies": {s: {} for s in studies},
    }


def run(args) -> int:
    from lorafair.commands.run import out_dir, write_report
    from lorafair.config.load import apply_overrides, validate_config
    from lorafair.run.runner import run_experiment

    cfg = validate_config(apply_overrides(build_recipe(args), args.overrides))
    out = out_dir(args, cfg)
    run_experiment(cfg, out, quiet=args.quiet, report=write_report)
    print(f"recipe: {out / 'config.yaml'} (extend it, then `lorafair run {out / 'config.yaml'} --out {out}`)")
    return 0
