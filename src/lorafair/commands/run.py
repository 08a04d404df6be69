"""``lorafair run RECIPE_OR_YAML``: run an experiment."""

from __future__ import annotations

from pathlib import Path

NAME = "run"
ORDER = 1
HELP = "run an experiment from a shipped recipe or a YAML file"
DESCRIPTION = """Run an experiment: train every variant (base, full, LoRA ladder, other PEFT methods) on the
shift data, evaluate every study, write RUN_DIR/metrics.csv, summary.md and the report.
Re-running into an existing run directory resumes it: each finished piece (data, a trained variant, a
study's evaluation) is reused when its own fingerprint matches, so a recipe can gain studies, seeds,
ranks or methods without retraining; a directory holding finished work of another model, data, train
or start config is refused. A killed variant resumes from its last checkpoint (train.checkpoint_every);
a variant whose loss stops being finite fails alone and is reported; the directory is locked while a
run works in it. After the studies the runner writes paired capture_<m> / delta_<m> rows and the
rank recommendation (see docs/report.md, docs/reliability.md).

examples:
  lorafair run demo
  lorafair run my.yaml --out runs/exp1 --set train.max_steps=20 --set variants.lora.ranks=[1,4]
"""


def add_arguments(p):
    import argparse

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("recipe", metavar="RECIPE_OR_YAML", help="a shipped recipe name (see `lorafair recipes`) or a YAML file")
    add_common(p)


def add_common(p):
    p.add_argument("--out", metavar="DIR", help="run directory (default: output.dir or runs/<recipe name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a config field (YAML value), repeatable: --set train.max_steps=20")
    p.add_argument("--resume", action="store_true", help="resume the run in --out (re-running into it does the same)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only (CI)")


def out_dir(args, cfg) -> Path:
    from lorafair.errors import UserError
    from lorafair.run.layout import RunLayout

    out = Path(args.out or cfg.output.dir or Path("runs") / cfg.name)
    if args.resume and not RunLayout(out).config_yaml.exists():
        raise UserError("--resume", str(out), "a run directory with a config.yaml to resume")
    return out


def run(args) -> int:
    from lorafair.config.load import load_config
    from lorafair.report import write_report
    from lorafair.run.runner import run_experiment

    cfg = load_config(args.recipe, args.overrides)
    run_experiment(cfg, out_dir(args, cfg), quiet=args.quiet, report=write_report)
    return 0
