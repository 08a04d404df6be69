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

With --executor ray|slurm the variants become jobs on that engine (one `lorafair train` job per variant ×
seed, one `lorafair evaluate` job per variant × seed) writing into the same run directory; this process
waits, shows progress, and writes the tables and report when they are done. Re-running the same command
re-submits only the jobs whose results are missing. See docs/scaling.md.

examples:
  lorafair run demo
  lorafair run my.yaml --out runs/exp1 --set train.max_steps=20 --set variants.lora.ranks=[1,4]
  lorafair run my.yaml --out /shared/runs/x --executor slurm --executor-opt partition=gpu \
      --executor-opt num_gpus=1 --executor-opt time=4:00:00
  lorafair run my.yaml --executor ray --executor-opt address=auto --executor-opt num_gpus=1
"""


def add_arguments(p):
    import argparse

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("recipe", metavar="RECIPE_OR_YAML", help="a shipped recipe name (see `lorafair recipes`) or a YAML file")
    add_common(p)
    p.add_argument("--executor", default="local", metavar="NAME",
                   help="where the variants run: local (this process, default), ray, slurm")
    p.add_argument("--executor-opt", dest="executor_opts", action="append", default=[], metavar="KEY=VALUE",
                   help="an executor option, repeatable: num_gpus=1, num_cpus=4, max_jobs=8, eval_group=4, address=auto (ray), "
                        "partition=gpu, time=4:00:00 (slurm), accelerate_config=ddp|fsdp|zero2|zero3 (multi-GPU training)")


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


def write_report(*args, **kwargs):
    """:func:`lorafair.report.write_report`, imported when a report is written: the report's plotting stack
    (matplotlib) is not loaded by runs with ``output.report: false`` or before the run ends."""
    from lorafair.report import write_report as write

    return write(*args, **kwargs)


def run(args) -> int:
    from lorafair.config.load import load_config
    from lorafair.run.executors.base import parse_options
    from lorafair.run.sweep import run_sweep

    options = parse_options(args.executor_opts)
    cfg = load_config(args.recipe, args.overrides)
    run_sweep(cfg, out_dir(args, cfg), args.executor, options, quiet=args.quiet, report=write_report)
    return 0
