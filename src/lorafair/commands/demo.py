"""``lorafair demo``: the shipped ``demo`` recipe on the embedded model, fully offline."""

from __future__ import annotations

NAME = "demo"
ORDER = 0
HELP = "run the demo recipe on the embedded model (offline)"
DESCRIPTION = "Run the shipped `demo` recipe on the embedded SmolLM2-135M-Instruct model, fully offline (see `lorafair recipes`)."


def add_arguments(p):
    from lorafair.commands.run import add_common

    add_common(p)


def run(args) -> int:
    from lorafair.commands.run import out_dir
    from lorafair.config.load import load_config
    from lorafair.report import write_report
    from lorafair.run.runner import run_experiment

    cfg = load_config("demo", args.overrides)
    run_experiment(cfg, out_dir(args, cfg), quiet=args.quiet, report=write_report)
    return 0
