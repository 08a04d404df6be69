"""The ``lorafair`` command line. Subcommands live in :mod:`lorafair.commands` (one module each)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys

from lorafair import __version__
from lorafair.errors import UserError, signal_exit_code, signal_name


class Parser(argparse.ArgumentParser):
    """argparse with lorafair's error contract: a usage mistake is one line ``error: …`` and exit code 2
    (argparse prints its usage block first), raised as :class:`UserError` so ``main`` reports it."""

    def error(self, message: str):  # noqa: D102 - argparse API
        raise UserError.plain(f"{self.prog}: {message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    import lorafair.commands as pkg

    parser = Parser(
        prog="lorafair",
        description="Did your low-rank fine-tune learn what the data asked for? "
        "Fine-tunes a ladder of variants (full, LoRA at many ranks, DoRA, rsLoRA, PiSSA) and measures "
        "toxicity, bias, fairness and distribution shift against rank.",
    )
    parser.add_argument("--version", action="version", version=f"lorafair {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    mods = []
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"lorafair.commands.{info.name}")
        if hasattr(mod, "NAME"):
            mods.append(mod)
    for mod in sorted(mods, key=lambda m: (getattr(m, "ORDER", 50), m.NAME)):
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # a SIGTERM the sweep driver turned into one carries its signum
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"interrupted by {signal_name(signum)}", file=sys.stderr)
        return signal_exit_code(signum)


if __name__ == "__main__":
    raise SystemExit(main())
