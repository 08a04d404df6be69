"""PEFT methods of the ladder through ``peft``: LoRA, DoRA, rsLoRA, PiSSA — one ``LoraConfig`` each."""

from __future__ import annotations

import fnmatch

import torch.nn as nn

from lorafair.errors import UserError


def block_linear_names(model) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` of the model except the output embedding (LM head): what 'all-linear' targets."""
    head = model.get_output_embeddings()
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and m is not head}


def targeted_modules(model, target_modules) -> dict[str, nn.Module]:
    """Modules matched by ``target_modules`` ('all-linear' or names matched as peft does: exact or suffix)."""
    linears = block_linear_names(model)
    if target_modules == "all-linear":
        return linears
    out = {}
    for name, mod in model.named_modules():
        for t in target_modules:
            if name == t or name.endswith("." + t) or fnmatch.fnmatch(name, t):
                out[name] = mod
    return out


def check_ranks(model, method: str, ranks: list[int], target_modules, field: str) -> None:
    """Raise UserError for a rank above a target module's smaller dimension, or targets matching nothing."""
    mods = targeted_modules(model, target_modules)
    if not mods:
        raise UserError(f"{field}.target_modules", target_modules, f"names of modules in the model, e.g. {', '.join(sorted({n.rsplit('.', 1)[-1] for n in block_linear_names(model)})[:8])}")
    dims = {name: min(m.weight.shape) for name, m in mods.items() if getattr(m, "weight", None) is not None and m.weight.dim() == 2}
    if not dims:
        return
    tightest = min(dims, key=dims.get)
    limit = dims[tightest]
    for r in ranks:
        if r > limit:
            shape = tuple(mods[tightest].weight.shape)
            raise UserError.plain(
                f"{field}.ranks: rank {r} exceeds module {tightest} (shape {shape}, smaller dimension {limit}); "
                f"allowed ranks are 1..{limit}"
            )


def peft_config(method: str, rank: int, alpha: float, dropout: float, target_modules):
    """The ``peft.LoraConfig`` of a ladder method: LoRA, DoRA (``use_dora``), rsLoRA (``use_rslora``:
    scaling alpha/sqrt(r)), PiSSA (``init_lora_weights="pissa"``: principal singular vectors init)."""
    from peft import LoraConfig, TaskType

    kw = dict(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, task_type=TaskType.CAUSAL_LM, bias="none")
    if method == "lora":
        return LoraConfig(**kw)
    if method == "dora":
        return LoraConfig(use_dora=True, **kw)
    if method == "rslora":
        return LoraConfig(use_rslora=True, **kw)
    if method == "pissa":
        return LoraConfig(init_lora_weights="pissa", **kw)
    raise ValueError(f"unknown PEFT method {method}")
