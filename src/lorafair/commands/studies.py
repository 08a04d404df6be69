"""``lorafair studies``: the studies and their recipe fields."""

from __future__ import annotations

NAME = "studies"
ORDER = 13
HELP = "list studies and their recipe fields"


def add_arguments(p):
    p.add_argument("name", nargs="?", help="show this study's fields with defaults and descriptions")


def run(args) -> int:
    from lorafair.studies.loader import available_studies, study_class

    names = [args.name] if args.name else available_studies()
    for n in names:
        cls = study_class(n)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{n}: {doc}")
        if args.name:
            for fname, f in cls.Config.model_fields.items():
                if f.is_required():
                    print(f"  {fname} (required): {f.description or ''}")
                    continue
                default = f.default if f.default_factory is None else f.default_factory()
                print(f"  {fname} (default {default!r}): {f.description or ''}")
    return 0
