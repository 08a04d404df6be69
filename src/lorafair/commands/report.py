"""``lorafair report RUN_DIR``: write report.html, report.md and plots/ of a run directory."""

from __future__ import annotations

import argparse

from lorafair.errors import UserError

NAME = "report"
HELP = "write report.html / report.md (plots, intervals, rank recommendation) of a run directory"
DESCRIPTION = ("Write RUN_DIR/report.html (self-contained, opens from disk) and RUN_DIR/report.md with its "
               "figures in RUN_DIR/plots/. The runner writes them at the end of every run; use this to "
               "rewrite them, e.g. with another --target.")
ORDER = 40


def _target(s: str) -> float | str:
    """--target as a number; text that is not one is kept, for :func:`check_target` to report in
    the one-line ``error: --target=…`` form (argparse would print its usage too)."""
    try:
        return float(s)
    except ValueError:
        return s


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (contains metrics.csv)")
    p.add_argument("--target", type=_target, default=0.9,
                   help="a rank reaches a target metric when its paired capture interval lies within "
                        "[TARGET, 2 - TARGET] (default 0.9)")


def check_target(target: float | str) -> None:
    if isinstance(target, str) or not (0 < target <= 1) or target != target:
        raise UserError("--target", target, "a number in (0, 1], e.g. 0.9 (a rank must lie within [target, 2 - target])")


def run(args) -> int:
    from lorafair.report import write_report

    check_target(args.target)
    out = write_report(args.run_dir, target=args.target)
    print(f"wrote {out['html']}")
    print(f"wrote {out['md']} ({len(out['plots'])} figures in {out['html'].parent / 'plots'}) "
          f"in {out['seconds']:.1f} s")
    return 0
