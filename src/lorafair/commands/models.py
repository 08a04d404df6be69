"""``lorafair models``: model sources and whether they are installed."""

from __future__ import annotations

NAME = "models"
ORDER = 11
HELP = "list model sources and whether they are installed"


def add_arguments(p):
    pass


def run(args) -> int:
    from lorafair.models.sources import list_models

    rows = list_models()
    w = max(len(r["source"]) for r in rows)
    s = max(len(r["status"]) for r in rows)
    for r in rows:
        print(f"{r['source']:<{w}}  {r['status']:<{s}}  {r['description']}")
    return 0
