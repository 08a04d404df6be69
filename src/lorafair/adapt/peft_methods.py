"""PEFT methods of the ladder through ``peft`` (the methods of :mod:`lorafair.methods`: LoRA, DoRA, rsLoRA,
PiSSA …) — one ``LoraConfig`` each — and the checks of their target modules and ranks."""

from __future__ import annotations

import torch.nn as nn

from lorafair.errors import UserError
from lorafair.methods import get_method, is_peft_method


def block_linear_names(model) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` of the model except the output embedding (LM head): what 'all-linear' targets."""
    head = model.get_output_embeddings()
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and m is not head}


def _peft_supported() -> tuple[type, ...]:
    """Module types peft's LoRA (and DoRA, rsLoRA, PiSSA) can adapt (``peft.tuners.lora.model._create_new_module``)."""
    types: list[type] = [nn.Linear, nn.Embedding, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MultiheadAttention]
    try:
        from transformers.pytorch_utils import Conv1D

        types.append(Conv1D)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def _peft_matches(name: str, target: str) -> bool:
    """peft's ``check_target_module_exists`` for a list of names: the module's full name, or a ``.``-suffix of it
    (no globs, no regular expressions: a list entry is a plain name)."""
    return name == target or name.endswith("." + target)


def targeted_modules(model, target_modules) -> dict[str, nn.Module]:
    """Modules peft adapts for ``target_modules``: 'all-linear', or a list of names matched as peft does."""
    if target_modules == "all-linear":
        return block_linear_names(model)
    return {name: mod for name, mod in model.named_modules()
            if name and any(_peft_matches(name, t) for t in target_modules)}


def _shown(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def check_ranks(model, method: str, ranks: list[int], target_modules, field: str) -> None:
    """Refuse, before training, what peft would refuse (or silently ignore) for ``target_modules``, and ranks
    peft would accept but that exceed a module: a list entry that matches no module (peft matches exact names
    and '.'-suffixes, not globs), an entry that matches a module peft cannot adapt (a LayerNorm, a whole block),
    and a rank above the smaller dimension of a targeted module."""
    linears = block_linear_names(model)
    examples = ", ".join(sorted({n.rsplit(".", 1)[-1] for n in linears})[:8])
    tm_field = f"{field}.target_modules"
    if target_modules != "all-linear":
        if isinstance(target_modules, str) or not target_modules:
            raise UserError(tm_field, target_modules, f"'all-linear' or a non-empty list of module names, e.g. [{examples}]")
        supported = _peft_supported()
        names = [n for n, _ in model.named_modules() if n]
        modules = dict(model.named_modules())
        for t in target_modules:
            hit = [n for n in names if _peft_matches(n, t)]
            if not hit:
                glob = any(ch in t for ch in "*?[]") or t.startswith("re:")
                how = ("peft matches module names exactly or by '.'-suffix, without globs or regular expressions"
                       if glob else "peft matches module names exactly or by '.'-suffix")
                raise UserError.plain(
                    f"{tm_field}={list(target_modules)!r}: expected names of modules of the model ({how}); "
                    f"{t!r} matches no module; e.g. {examples}")
            bad = [n for n in hit if not isinstance(modules[n], supported)]
            if bad:
                kinds = sorted({type(modules[n]).__name__ for n in bad})
                raise UserError.plain(
                    f"{tm_field}={list(target_modules)!r}: expected modules peft can adapt (Linear, Embedding, Conv1d/2d/3d, "
                    f"Conv1D, MultiheadAttention); {t!r} matches {_shown(bad)} ({', '.join(kinds)}); e.g. {examples}")
    mods = targeted_modules(model, target_modules)
    if not mods:
        raise UserError(tm_field, target_modules, f"names of modules in the model, e.g. {examples}")
    dims = {name: min(m.weight.shape) for name, m in mods.items() if getattr(m, "weight", None) is not None and m.weight.dim() == 2}
    if not dims:
        return
    tightest = min(dims, key=dims.get)
    limit = dims[tightest]
    for r in ranks:
        if r > limit:
            shape = tuple(mods[tightest].weight.shape)
            raise UserError.plain(
                f"{field}.ranks={list(ranks)!r}: expected ranks the model can take: rank {r} exceeds module "
                f"{tightest} (shape {shape}, smaller dimension {limit}); allowed ranks are 1..{limit}"
            )


def peft_config(method: str, rank: int, alpha: float, dropout: float, target_modules):
    """The ``peft.LoraConfig`` of a ladder method: rank, alpha, dropout and target modules, plus the method's own
    keywords from the registry (:mod:`lorafair.methods`: DoRA ``use_dora``, rsLoRA ``use_rslora`` — scaling
    alpha/sqrt(r) —, PiSSA ``init_lora_weights="pissa"``: principal singular vectors init)."""
    from peft import LoraConfig, TaskType

    if not is_peft_method(method):
        raise ValueError(f"unknown PEFT method {method}")
    kw = dict(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, task_type=TaskType.CAUSAL_LM, bias="none")
    return LoraConfig(**get_method(method).lora_kwargs, **kw)
