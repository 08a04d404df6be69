"""``lorafair strategies``: the fairness-promoting adaptation strategies and their recipe fields."""

from __future__ import annotations

NAME = "strategies"
ORDER = 14
HELP = "list adaptation strategies (crossed with the rank ladder) and their recipe fields"


def add_arguments(p):
    p.add_argument("name", nargs="?", help="show this strategy's fields with defaults and descriptions")


def run(args) -> int:
    from lorafair.strategies import STRATEGIES, lam_suffix

    names = [args.name] if args.name else STRATEGIES.names()
    for n in names:
        cls = STRATEGIES.get(n)
        print(f"{n}: {STRATEGIES.help(n)}")
        if args.name:
            print(f"  needs: {cls.needs}")
            for fname, f in cls.Config.model_fields.items():
                default = f.default if f.default_factory is None else f.default_factory()
                print(f"  {fname} (default {default!r}): {f.description or ''}")
            if "lam" in cls.Config.model_fields:
                print(f"  a list lam gives one instance per λ: {n}: {{lam: [0.1, 1, 10]}} -> "
                      f"{', '.join(f'{n}_{lam_suffix(x)}' for x in (0.1, 1, 10))}")
            print(f"  another configuration of it in the same recipe: <instance name>: {{use: {n}, …}} "
                  f"(lora-r8+<instance name>; docs/strategies.md)")
    return 0
