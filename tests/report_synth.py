"""Synthetic run directories for the report tests (no model, no training: files only).

The numbers follow a plausible shape: a LoRA variant of rank r captures 1 − exp(−r / 16) of the
base→full change, so with target 0.9 the first rank whose whole interval clears 0.9 is known.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Iterable, Optional

from lorafair.run.layout import COLUMNS  # noqa: F401  (metrics.csv columns; test_cli_faults imports them from here)

RANKS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

_T = {"role": "target", "direction": "lower", "ideal": None}
# metric_roles.json of the synthetic run (what the runner writes from the studies' MetricSpecs)
SYNTH_ROLES = {
    "toxicity": {"emt": _T, "toxicity_prob": _T, "mean_toxicity": _T, "emt_gap": _T},
    "stereotypes": {"crows_stereotype_pct": _T, "stereoset_ss": _T},
    "decisions": {"approval_gap": _T, "tpr_gap": _T, "flip_rate": dict(_T, role="diagnostic")},
    "shift": {"kl_full_v": _T, "kl_v_base": dict(_T, role="diagnostic", direction="none")},
    "forgetting": {"loss": dict(_T, role="guard")},
    "heldout": {"loss": _T},
}
GUARD = ("perplexity", dict(_T, role="guard"), (20.0, 26.0, 0.5, {}))  # make_run(guards=True): toxicity's guard

# the "_study" entry of each study in metric_roles.json (what the runner writes besides the metric entries)
SYNTH_STUDY = {
    "toxicity": {"description": "Synthetic toxicity: EMT and toxicity probability, per group.",
                 "headline": ["emt", "toxicity_prob", "mean_toxicity", "emt_gap", "emt_vs_base", "perplexity"]},
    "stereotypes": {"description": "Synthetic stereotype scores.",
                    "headline": ["crows_stereotype_pct", "stereoset_ss", "stereoset_icat"]},
    "decisions": {"description": "Synthetic lending decisions.",
                  "headline": ["approval_gap", "tpr_gap", "final_score_gap", "profit"]},
    "shift": {"description": "Synthetic posterior shift.", "headline": ["kl_full_v", "kl_v_base"]},
    "forgetting": {"description": "Synthetic loss on general text.", "headline": ["loss"]},
    "heldout": {"description": "Synthetic loss on held-out fine-tuning records.", "headline": ["loss"]},
}

# study -> metric -> (base value, full value, interval half-width, groups with offsets)
STUDY_SHAPES = {
    "toxicity": {
        "emt": (0.42, 0.12, 0.02, {"gender": 0.0, "race": 0.06, "religion": 0.1}),
        "toxicity_prob": (0.38, 0.08, 0.03, {"gender": 0.0, "race": 0.05, "religion": 0.09}),
        "mean_toxicity": (0.20, 0.06, 0.01, {}),
        "emt_gap": (0.10, 0.02, 0.015, {}),
    },
    "stereotypes": {
        "crows_stereotype_pct": (0.62, 0.53, 0.01, {}),
        "stereoset_ss": (0.64, 0.55, 0.012, {}),
    },
    "decisions": {
        "approval_gap": (0.30, 0.06, 0.02, {}),
        "tpr_gap": (0.25, 0.05, 0.02, {}),
        "flip_rate": (0.2, 0.2, 0.02, {}),  # base == full: capture undefined
    },
    "shift": {
        "kl_v_base": (0.0, 0.80, 0.02, {}),
        "kl_full_v": (0.80, 0.0, 0.02, {}),
    },
    "forgetting": {"loss": (3.0, 3.4, 0.05, {})},
    "heldout": {"loss": (3.0, 1.0, 0.05, {})},
}
STRATEGY_COST = 0.5  # a strategy variant's guards are this much worse (in the guard's worse direction) than plain


def captured(rank: Optional[int], variant: str) -> float:
    if variant == "base":
        return 0.0
    if variant == "full" or rank is None:  # full, full+<strategy>
        return 1.0
    return 1 - math.exp(-rank / 16)


def make_run(root: Path, *, ranks: Iterable[int] = RANKS, studies: Iterable[str] = ("toxicity", "stereotypes",
             "decisions", "shift"), seeds: Iterable[int] = (0,), methods: Iterable[str] = ("lora",),
             samples: bool = True, artifacts: bool = True, run_info: bool = True,
             hostile: bool = False, n: int = 200, study_entries: bool = True, guards: bool = False,
             strategies: Optional[dict[str, float]] = None) -> Path:
    """Write a synthetic run directory at ``root`` and return it. ``study_entries=False``: metric_roles.json
    without the studies' ``_study`` entries (title, description, headline), as an older lorafair wrote it.
    ``guards``: the toxicity study gets a ``perplexity`` guard (lower is better). ``strategies``: strategy name ->
    rank factor k; each ranked variant and full get a ``+<strategy>`` twin whose capture is 1 − exp(−k·r / 16)
    (full's: 1) and whose guard metrics are :data:`STRATEGY_COST` worse."""
    root.mkdir(parents=True, exist_ok=True)
    ranks, studies, seeds, methods = list(ranks), list(studies), list(seeds), list(methods)
    strategies = dict(strategies or {})
    roles_of = {s: dict(SYNTH_ROLES[s]) for s in studies}
    shapes = {s: dict(STUDY_SHAPES[s]) for s in studies}
    if guards and "toxicity" in studies:
        roles_of["toxicity"][GUARD[0]] = GUARD[1]
        shapes["toxicity"][GUARD[0]] = GUARD[2]
    variants = [("base", "base", None)] + [(f"{m}-r{r}", m, r) for m in methods for r in ranks] + [("full", "full", None)]
    variants += [(f"{m}-r{r}+{s}", m, r) for s in strategies for m in methods for r in ranks]
    variants += [(f"full+{s}", "full", None) for s in strategies]
    rows = []
    for seed in seeds:
        for name, method, rank in variants:
            strategy = name.split("+")[1] if "+" in name else ""
            if not strategy:
                c = captured(rank, name)
            else:  # full+<strategy>: as far as plain full
                c = 1.0 if rank is None else 1 - math.exp(-rank * strategies[strategy] / 16)
            if method == "dora" and rank is not None:
                c = min(1.0, c * 1.1)
            for study in studies:
                for metric, (b, f, hw, groups) in shapes[study].items():
                    role = roles_of[study].get(metric, {})
                    v = b + c * (f - b) + 0.003 * seed
                    if strategy and role.get("role") == "guard":
                        v += STRATEGY_COST if role["direction"] == "lower" else -STRATEGY_COST
                    rows.append([name, method, rank if rank is not None else "", seed, study, metric, "",
                                 round(v, 6), round(v - hw, 6), round(v + hw, 6), n, "", strategy])
                    if name != "base" and role.get("role") == "guard":
                        rows.append([name, method, rank if rank is not None else "", seed, study, f"delta_{metric}",
                                     "", round(v - b, 6), round(v - b - hw, 6), round(v - b + hw, 6), n, "", strategy])
                    if (rank is not None or strategy) and role.get("role") == "target":
                        # paired capture rows as the runner writes them; half-width ≈ 2·hw / |base − full|
                        chw = 2 * hw / abs(b - f)
                        r_ = rank if rank is not None else ""
                        rows.append([name, method, r_, seed, study, f"capture_{metric}", "", round(c, 6),
                                     round(c - chw, 6), round(c + chw, 6), n, "", strategy])
                        rows.append([name, method, r_, seed, study, f"delta_{metric}", "", round(v - b, 6),
                                     round(v - b - hw, 6), round(v - b + hw, 6), n, "", strategy])
                    for g, off in groups.items():
                        gv = v + off * (1 - c)
                        rows.append([name, method, rank if rank is not None else "", seed, study, metric, g,
                                     round(gv, 6), round(gv - 2 * hw, 6), round(gv + 2 * hw, 6), n // 3, "", strategy])
    with open(root / "metrics.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        w.writerows(r + [""] * (len(COLUMNS) - len(r)) for r in rows)  # trailing columns (strategy) empty
    (root / "config.yaml").write_text(
        "model: embedded:smollm2-135m-instruct\n"
        "data:\n  source: honest-detox\n  limit: 400\n"
        "train:\n  epochs: 1\n  lr: 0.0002\n"
        f"seeds: {seeds}\n"
        f"ranks: {ranks}\n"
        f"studies: {studies}\n", encoding="utf-8")
    roles = {s: ({"_study": SYNTH_STUDY[s]} if study_entries else {}) | roles_of[s] for s in studies}
    (root / "metric_roles.json").write_text(json.dumps(roles), encoding="utf-8")
    if run_info:
        (root / "run_info.json").write_text(json.dumps({
            "model": "embedded:smollm2-135m-instruct", "recipe": "detox-quick",
            "hardware": "cpu (2 cores), 7.6 GiB RAM", "versions": {"torch": "2.13.0", "transformers": "5.1",
                                                                    "peft": "0.21"},
            "wall_time_s": 5423.2}), encoding="utf-8")
    if not artifacts:
        return root
    for seed in seeds:
        for name, method, rank in variants:
            d = root / f"{name}-s{seed}"
            (d / "results").mkdir(parents=True, exist_ok=True)
            c = captured(rank, name)
            for study in studies:
                (d / "results" / f"{study}.json").write_text(json.dumps({
                    "metrics": [], "info": {"n_prompts": n, "k": 4, "scorer": "jigsaw-bilstm"}}), encoding="utf-8")
            if "toxicity" in studies and samples:
                lines = []
                for i in range(8):
                    prompt = f"The {['woman', 'man', 'muslim', 'jew'][i % 4]} worked as a"
                    text = f"generation {i} of {name}"
                    if hostile and i == 0:
                        text = '<script>alert(1)</script> "><img src=x onerror=alert(2)> | *bold* `code`\n\nline'
                    tox = max(0.0, min(1.0, 0.2 + 0.08 * i * (1 - c)))
                    for k in range(2):
                        lines.append(json.dumps({"prompt": prompt + (" <b>x</b>" if hostile and i == 1 else ""),
                                                 "group": ["gender", "gender", "religion", "religion"][i % 4],
                                                 "sample": k, "text": text,
                                                 "scores": {"toxic": tox, "insult": tox / 2}}))
                (d / "samples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
            if "shift" in studies:
                layers = [{"layer": l, "kl_to_final": (6 - l) * (1 + 0.3 * c),
                           "toxic_mass": 0.01 * (l + 1) * (1 - 0.7 * c)} for l in range(6)]
                (d / "shift_layers.json").write_text(json.dumps({"layers": layers}), encoding="utf-8")
            if "decisions" in studies:
                rounds = list(range(10))
                gap = [0.3 * (1 - 0.8 * c) * (1 + 0.05 * t) for t in rounds]
                (d / "decisions_trajectory.json").write_text(json.dumps({
                    "round": rounds, "approval_gap": gap,
                    "mean_score": {"A": [620 + 2 * t for t in rounds], "B": [580 + (2 * c - 1) * 3 * t for t in rounds]},
                }), encoding="utf-8")
    if "shift" in studies:
        sranks = [1, 2, 4, 8, 16, 32, 64, 128, 256]
        mods = []
        for li in range(2):
            for mtype, decay in (("self_attn.q_proj", 8), ("self_attn.v_proj", 20), ("mlp.down_proj", 40)):
                mods.append({"name": f"model.layers.{li}.{mtype}", "module_type": mtype, "layer": li,
                             "energy": {str(r): 1 - math.exp(-r / decay) for r in sranks}})
        by_type = {}
        for mtype in ("self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"):
            ms = [m for m in mods if m["module_type"] == mtype]
            by_type[mtype] = {"n_modules": len(ms), "energy": {str(r): sum(m["energy"][str(r)] for m in ms) / len(ms)
                                                               for r in sranks}}
        (root / "spectrum.json").write_text(json.dumps({"modules": mods, "summary": {"by_type": by_type}}),
                                            encoding="utf-8")
    return root
