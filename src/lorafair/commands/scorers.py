"""``lorafair scorers``: the toxicity scorers and whether their weights are installed."""

from __future__ import annotations

NAME = "scorers"
ORDER = 12
HELP = "list toxicity scorers and whether their weights are installed"


def add_arguments(p) -> None:
    pass


def rows() -> list[dict[str, str]]:
    """One row per registered scorer: name (with its argument form), available (yes/no: weights
    installed or cached), description with the availability note."""
    from lorafair.scorers import DEFAULT_SCORER, SCORERS, scorer_availability

    forms = {"hf": "hf:<folder|hub id>", "detoxify": "detoxify:<variant>", "llm-judge": "llm-judge:<model source>"}
    out = []
    for name in SCORERS.names():
        ok, note = scorer_availability(name)
        label = forms.get(name, name) + (" [default]" if name == DEFAULT_SCORER else "")
        desc = SCORERS.help(name) + (f" ({note})" if note else "")
        out.append({"scorer": label, "available": "yes" if ok else "no", "description": desc})
    return out


def run(args) -> int:
    table = rows()
    w = max(len(r["scorer"]) for r in table)
    print(f"{'scorer':<{w}}  available  description")
    for r in table:
        print(f"{r['scorer']:<{w}}  {r['available']:<9}  {r['description']}")
    return 0
