"""``lorafair compare RUN_DIR RUN_DIR ... --out DIR``: several runs on the same plots."""

from __future__ import annotations

import argparse

from lorafair.commands.report import _target, check_target

NAME = "compare"
HELP = "put several runs (e.g. two models or two data sets) on the same plots: compare.html / compare.md"
DESCRIPTION = ("Write DIR/compare.html (self-contained) and DIR/compare.md with figures in DIR/plots/: every "
               "headline metric against rank with one line per run, capture ratios, and the rank "
               "recommendations side by side.")
ORDER = 41


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="two or more run directories")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write compare.html, compare.md, plots/")
    p.add_argument("--target", type=_target, default=0.9, help="capture-ratio target (default 0.9)")


def run(args) -> int:
    from lorafair.report import write_compare

    check_target(args.target)
    out = write_compare(args.run_dirs, args.out, target=args.target)
    print(f"wrote {out['html']}")
    print(f"wrote {out['md']} ({len(out['plots'])} figures) in {out['seconds']:.1f} s")
    return 0
