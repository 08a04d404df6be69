"""``lorafair recipes``: list shipped recipes (or print one)."""

from __future__ import annotations

NAME = "recipes"
ORDER = 10
HELP = "list shipped recipes, or print one as YAML"


def add_arguments(p):
    p.add_argument("name", nargs="?", help="print this recipe's YAML (copy it to start your own)")


def run(args) -> int:
    import yaml

    from lorafair.config.load import recipe_names, recipe_text
    from lorafair.errors import UserError

    if args.name:
        if args.name not in recipe_names():
            raise UserError("recipe", args.name, f"one of {', '.join(recipe_names())}")
        print(recipe_text(args.name), end="")
        return 0
    names = recipe_names()
    width = max(len(n) for n in names)
    for n in names:
        desc = (yaml.safe_load(recipe_text(n)) or {}).get("description", "")
        print(f"{n:<{width}}  {desc}")
    return 0
