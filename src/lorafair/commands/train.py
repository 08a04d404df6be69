"""``lorafair train RECIPE --variant NAME``: train one variant of a recipe into a run directory.

This is the unit that scales: it runs unchanged under ``accelerate launch`` (DDP, FSDP, DeepSpeed),
e.g. ``accelerate launch --num_processes 2 -m lorafair train my.yaml --variant lora-r8 --out runs/x``,
and a sweep's variants can be fanned out to Ray/Slurm as independent ``lorafair train`` jobs; a later
``lorafair run`` into the same directory finds them trained and only evaluates.
"""

from __future__ import annotations

NAME = "train"
ORDER = 2
HELP = "train one variant of a recipe (the unit for accelerate launch / Slurm / Ray)"
DESCRIPTION = __doc__


def add_arguments(p):
    import argparse

    from lorafair.commands.run import add_common

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("recipe", metavar="RECIPE_OR_YAML")
    p.add_argument("--variant", required=True, help="variant name, e.g. full, lora-r8, dora-r4")
    p.add_argument("--seed", type=int, default=None, help="one of the recipe's seeds (default: the first)")
    add_common(p)


def run(args) -> int:
    from lorafair.commands.run import out_dir
    from lorafair.config.load import load_config
    from lorafair.run.runner import Runner

    cfg = load_config(args.recipe, args.overrides)
    Runner(cfg, out_dir(args, cfg), quiet=args.quiet).train_one(args.variant, args.seed)
    return 0
