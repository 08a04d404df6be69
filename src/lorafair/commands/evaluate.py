"""``lorafair evaluate RECIPE --variant NAME [--variant NAME …]``: evaluate every study on trained variants of a
run directory.

The evaluation unit of ``lorafair run --executor ray|slurm`` (as ``lorafair train`` is the training unit):
it reuses what is evaluated already (each ``results/<study>.json`` carries its fingerprint), writes only its
variant's results, takes no run-wide lock and leaves metrics.csv and the report to ``lorafair run``.
"""

from __future__ import annotations

NAME = "evaluate"
ORDER = 3
HELP = "evaluate one variant of a run directory (the evaluation unit for --executor)"
DESCRIPTION = __doc__


def add_arguments(p):
    import argparse

    from lorafair.commands.run import add_common

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("recipe", metavar="RECIPE_OR_YAML")
    p.add_argument("--variant", dest="variants", action="append", required=True, metavar="VARIANT",
                   help="variant name, e.g. base, full, lora-r8; repeatable (one base model loaded for them all)")
    p.add_argument("--seed", type=int, default=None, help="one of the recipe's seeds (default: the first)")
    add_common(p)


def run(args) -> int:
    from lorafair.commands.run import out_dir
    from lorafair.config.load import load_config
    from lorafair.run.runner import Runner

    cfg = load_config(args.recipe, args.overrides)
    Runner(cfg, out_dir(args, cfg), quiet=args.quiet).evaluate_one(args.variants, args.seed)
    return 0
