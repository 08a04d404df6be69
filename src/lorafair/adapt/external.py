"""Variants made elsewhere (``variants.external`` of a recipe): a PEFT adapter folder or a full checkpoint
(``hf:<folder or hub id>``), evaluated exactly like a trained variant (the same items, the same random numbers)
and never trained.

- :func:`resolve_external` reads what a recipe entry points to, before any work: an adapter folder's
  ``adapter_config.json`` (a LoRA-family ``peft_type``; the method — :func:`lorafair.methods.method_of_lora_config`
  — and the rank ``r`` when the recipe does not give them, and refused when it gives others) and its weights
  (``adapter_model.safetensors``; a pickle ``adapter_model.bin`` only with ``model.allow_pickle``), or a full
  checkpoint's ``config.json`` and ``*.safetensors``. Its :class:`ExternalVariant` carries a hash of those files
  (``digest``), which is part of every fingerprint of its evaluations: a changed file is evaluated again.
- :func:`check_against_base` compares it with the loaded base model before any work: every adapted module must
  exist in the base with the shapes the adapter's ``lora_A`` / ``lora_B`` need; a full checkpoint must have the
  base's ``model_type`` and every tensor of the base's state dict at its shape. A mismatch is one ``error:`` line
  naming both models. (``base_model_name_or_path`` alone differing is only logged: the same weights often live
  under several names — a hub id, a local copy, the embedded model's dequantised folder.)
- :func:`load_external` builds its model: the adapter on a copy of the base model (as a trained adapter is
  loaded), the full checkpoint's tensors loaded into a copy of the base model (so it has the base's class,
  dtype and device, and no code of the checkpoint runs: ``trust_remote_code`` is never used).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lorafair.adapt import checkpoint
from lorafair.adapt.shared_copy import variant_copy
from lorafair.adapt.variants import Variant
from lorafair.errors import UserError
from lorafair.methods import is_peft_method, method_of_lora_config

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_PICKLE = "adapter_model.bin"
SOURCES = "a PEFT adapter folder (adapter_config.json and adapter_model.safetensors) or hf:<folder or hub id> of a " \
          "full checkpoint (config.json and *.safetensors)"


# source -> the local folder it was resolved to (a hub id's snapshot in the HF cache): kept out of the variant's
# fields, so its fingerprint (the fields) does not depend on where a cache lives
_FOLDERS: dict[str, Path] = {}


@dataclass(frozen=True)
class ExternalVariant(Variant):
    """A variant made elsewhere. ``kind``: ``adapter`` or ``full``; ``digest``: a hash of the files it is loaded from;
    ``label``: the recipe's name for it (a ``role: full`` entry is named ``full``). Its fields are its fingerprint."""

    source: str = ""
    kind: str = ""
    digest: str = ""
    label: str = ""

    @property
    def trains(self) -> bool:
        return False

    @property
    def folder(self) -> str:
        """Where its files are (resolved by :func:`resolve_external`)."""
        if self.source in _FOLDERS:
            return str(_FOLDERS[self.source])
        prefix, sep, arg = self.source.partition(":")
        return str(Path(arg if sep and prefix == "hf" else self.source).expanduser().absolute())


def files_digest(paths: list[Path]) -> str:
    """sha256 of the files' names and contents (16 hex digits)."""
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda x: x.name):
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _read_json_object(path: Path, field: str, source: str) -> dict:
    try:
        raw = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise UserError(field, source, f"a folder whose {path.name} is readable UTF-8 JSON ({type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise UserError(field, source, f"a folder whose {path.name} is a JSON object")
    return raw


def _hub_folder(repo_id: str, field: str, source: str) -> Path:
    """The local snapshot of a hub model's configs and safetensors weights (downloaded when online)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors"]))
    except Exception as e:  # offline, no such repo, gated …
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(field, source, f"{SOURCES}; as a hub id it could not be fetched ({first})") from None


def resolve_external(entry, index: int, *, allow_pickle: bool = False) -> ExternalVariant:
    """The :class:`ExternalVariant` of recipe entry ``variants.external[index]`` (an
    :class:`lorafair.config.schema.ExternalConfig`); UserError naming the entry's field for a bad source."""
    field = f"variants.external[{index}]"
    src = entry.source
    prefix, sep, arg = src.partition(":")
    hf = bool(sep) and prefix == "hf"
    path = Path(arg if hf else src).expanduser()
    if not path.exists():
        if not hf or not arg:
            raise UserError(f"{field}.source", src, f"{SOURCES} (no such folder)")
        folder = _hub_folder(arg, f"{field}.source", src)
    elif not path.is_dir():
        raise UserError(f"{field}.source", src, f"{SOURCES} (it is a file)")
    else:
        folder = path
    _FOLDERS[src] = folder.absolute()
    if (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").is_file():
        return _resolve_adapter(entry, field, folder, allow_pickle)
    if not hf:
        raise UserError(f"{field}.source", src, f"{SOURCES} (this folder has no {ADAPTER_CONFIG}"
                        + ("; a full checkpoint is given as hf:<folder>)" if (folder / "config.json").is_file() else ")"))
    return _resolve_full(entry, field, folder, allow_pickle)


def _resolve_adapter(entry, field: str, folder: Path, allow_pickle: bool) -> ExternalVariant:
    src = entry.source
    if entry.role == "full":
        raise UserError(f"{field}.role", "full", "variant for an adapter (the full reference is a full checkpoint, "
                        "hf:<folder or hub id>)")
    cfg = _read_json_object(folder / ADAPTER_CONFIG, f"{field}.source", src)
    ptype = cfg.get("peft_type")
    if ptype != "LORA":
        raise UserError(f"{field}.source", src, f"a LoRA-family adapter (adapter_config.json peft_type LORA; this one "
                        f"has {ptype!r})")
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        if (folder / ADAPTER_PICKLE).is_file():
            if not allow_pickle:
                raise UserError(f"{field}.source", src, f"an adapter with safetensors weights ({ADAPTER_WEIGHTS}; this "
                                f"folder has only a pickle {ADAPTER_PICKLE}: set model.allow_pickle: true to load it)")
            weights = folder / ADAPTER_PICKLE
        else:
            raise UserError(f"{field}.source", src, f"an adapter folder with its weights ({ADAPTER_WEIGHTS})")
    method = method_of_lora_config(cfg)
    if entry.method is not None and entry.method != method:
        raise UserError(f"{field}.method", entry.method, f"{method}, the method of the adapter's adapter_config.json "
                        "(or leave method out)")
    rank = cfg.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
        raise UserError(f"{field}.source", src, f"an adapter_config.json with a positive integer rank r (it has {rank!r})")
    if entry.rank is not None and entry.rank != rank:
        raise UserError(f"{field}.rank", entry.rank, f"{rank}, the rank r of the adapter's adapter_config.json (or leave "
                        "rank out)")
    alpha = cfg.get("lora_alpha")
    tm = cfg.get("target_modules")
    return ExternalVariant(
        entry.name, method, rank, (), float(alpha) if isinstance(alpha, (int, float)) else None,
        float(cfg.get("lora_dropout") or 0.0), tuple(tm) if isinstance(tm, list) else str(tm),
        source=src, kind="adapter",
        digest=files_digest([folder / ADAPTER_CONFIG, weights]), label=entry.name)


def _weight_files(folder: Path, allow_pickle: bool, field: str, src: str) -> list[Path]:
    st = sorted(folder.glob("*.safetensors"))
    if st:
        return st
    pickles = sorted(folder.glob("*.bin"))
    if pickles and allow_pickle:
        return pickles
    if pickles:
        raise UserError(f"{field}.source", src, "a checkpoint with safetensors weights (this folder has only pickle "
                        ".bin weights; set model.allow_pickle: true to load them)")
    raise UserError(f"{field}.source", src, "a full checkpoint folder with config.json and *.safetensors weights")


def _resolve_full(entry, field: str, folder: Path, allow_pickle: bool) -> ExternalVariant:
    src = entry.source
    if not (folder / "config.json").is_file():
        raise UserError(f"{field}.source", src, f"{SOURCES} (this folder has neither config.json nor {ADAPTER_CONFIG})")
    if entry.method not in (None, "full"):
        raise UserError(f"{field}.method", entry.method, "full (or leave it out): the source is a full checkpoint")
    if entry.rank is not None:
        raise UserError(f"{field}.rank", entry.rank, "no rank (leave it out): the source is a full checkpoint")
    files = _weight_files(folder, allow_pickle, field, src)
    name = "full" if entry.role == "full" else entry.name
    return ExternalVariant(name, "full", None, source=src, kind="full",
                           digest=files_digest([folder / "config.json"] + files), label=entry.name)


# ------------------------------------------------------------------------------------ checks against the base

def _tensor_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, from safetensors headers (nothing loaded) or, for allowed pickles, the loaded tensors."""
    out: dict[str, tuple[int, ...]] = {}
    for f in files:
        if f.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(f), framework="pt") as st:
                for k in st.keys():
                    out[k] = tuple(st.get_slice(k).get_shape())
        else:
            import torch

            out.update({k: tuple(v.shape) for k, v in torch.load(f, map_location="cpu", weights_only=True).items()})
    return out


def _mismatch(v: ExternalVariant, index: int, base_source: str, what: str, detail: str) -> UserError:
    return UserError.plain(f"variants.external[{index}].source={v.source!r}: expected {what} of the base model "
                           f"{base_source} ({detail})")


def check_against_base(base_model, v: ExternalVariant, index: int, base_source: str,
                       log: Optional[logging.Logger] = None) -> None:
    """Refuse an external variant that does not fit ``base_model`` (see the module doc)."""
    folder = Path(v.folder)
    if v.kind == "adapter":
        _check_adapter(base_model, v, index, base_source, folder, log)
    else:
        _check_full(base_model, v, index, base_source, folder)


def _check_adapter(base_model, v, index, base_source, folder, log) -> None:
    import torch.nn as nn

    cfg = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8-sig"))
    said = cfg.get("base_model_name_or_path")
    said_txt = f"adapter_config.json names base_model_name_or_path={said!r}"
    files = [p for p in (folder / ADAPTER_WEIGHTS, folder / ADAPTER_PICKLE) if p.is_file()][:1]
    shapes = _tensor_shapes(files)
    modules = dict(base_model.named_modules())
    adapted = 0
    for key, shape in sorted(shapes.items()):
        part = next((p for p in (".lora_A.", ".lora_B.", ".lora_embedding_A", ".lora_embedding_B") if p in key), None)
        if part is None:
            continue
        name = key.split(part)[0].removeprefix("base_model.model.")
        mod = modules.get(name)
        if mod is None:
            raise _mismatch(v, index, base_source, "an adapter", f"{said_txt}; it adapts module {name}, which the base "
                            "model does not have")
        adapted += 1
        if isinstance(mod, nn.Linear):
            need = (shape[0], mod.in_features) if part == ".lora_A." else (mod.out_features, shape[1])
            ok = shape[1] == mod.in_features if part == ".lora_A." else shape[0] == mod.out_features
            if not ok:
                raise _mismatch(v, index, base_source, "an adapter", f"{said_txt}; its {key} has shape {shape}, the "
                                f"base module {name} (Linear {mod.in_features}->{mod.out_features}) needs {need}")
        elif isinstance(mod, nn.Embedding):
            ok = shape[1] == mod.num_embeddings if "embedding_A" in part else shape[0] == mod.embedding_dim
            if not ok:
                raise _mismatch(v, index, base_source, "an adapter", f"{said_txt}; its {key} has shape {shape}, the "
                                f"base module {name} is Embedding({mod.num_embeddings}, {mod.embedding_dim})")
    if not adapted:
        raise UserError(f"variants.external[{index}].source", v.source, "an adapter with LoRA weights (lora_A / lora_B "
                        "tensors); this one has none")
    own = getattr(getattr(base_model, "config", None), "_name_or_path", "") or ""
    names = {str(x).rstrip("/") for x in (own, base_source, base_source.partition(":")[2]) if x}
    if said and str(said).rstrip("/") not in names and log is not None:
        log.warning("%s (%s): %s, the run's base is %s; its module shapes fit, so it is evaluated", v.label, v.source,
                    said_txt, base_source)


def _tie_keys(model, sd: dict) -> dict[str, object]:
    """State-dict key -> a key shared by tied tensors (lm_head.weight and model.embed_tokens.weight). On a model
    built on the meta device (the sweep driver's check, :func:`lorafair.models.sources.model_skeleton`) every
    tensor's ``data_ptr()`` is 0, so there the tied tensors are the same parameter (or buffer) object."""
    if not any(t.device.type == "meta" for t in sd.values()):
        return {k: t.data_ptr() for k, t in sd.items()}
    same = {k: id(t) for k, t in [*model.named_parameters(remove_duplicate=False),
                                  *model.named_buffers(remove_duplicate=False)]}
    return {k: same.get(k, ("key", k)) for k in sd}


def _check_full(base_model, v, index, base_source, folder) -> None:
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8-sig"))
    base_type = getattr(getattr(base_model, "config", None), "model_type", None)
    if cfg.get("model_type") != base_type:
        raise _mismatch(v, index, base_source, "a checkpoint", f"its config.json has model_type "
                        f"{cfg.get('model_type')!r}, the base model {base_type!r}")
    shapes = _tensor_shapes(_weight_files(folder, True, f"variants.external[{index}]", v.source))
    sd = base_model.state_dict()
    tie = _tie_keys(base_model, sd)
    ptrs: dict[object, list[str]] = {}
    for k in sd:
        ptrs.setdefault(tie[k], []).append(k)
    for k, t in sd.items():
        got = shapes.get(k)
        if got is None:
            tied = [o for o in ptrs[tie[k]] if o != k and o in shapes]
            if tied:
                continue
            raise _mismatch(v, index, base_source, "a checkpoint", f"it has no tensor {k}, which the base model has")
        if got != tuple(t.shape):
            raise _mismatch(v, index, base_source, "a checkpoint", f"its {k} has shape {got}, the base model's "
                            f"{tuple(t.shape)}")
    extra = sorted(set(shapes) - set(sd))
    if extra:
        raise _mismatch(v, index, base_source, "a checkpoint", f"it has tensor {extra[0]}"
                        + (f" and {len(extra) - 1} more" if len(extra) > 1 else "") + ", which the base model lacks")


# ------------------------------------------------------------------------------------ loading

def load_external(base_model, v: ExternalVariant, device):
    """The model of an external variant in eval mode on ``device`` (the base model is never modified)."""
    folder = Path(v.folder)
    if v.kind == "adapter":
        assert is_peft_method(v.method)
        return checkpoint.load_adapter(variant_copy(base_model, v.method), folder).to(device).eval()
    import torch

    model = copy.deepcopy(base_model)
    for f in _weight_files(folder, True, "", v.source):
        if f.suffix == ".safetensors":
            checkpoint.load_full_weights(model, f)
        else:  # allowed only with model.allow_pickle (checked when the variant was resolved)
            model.load_state_dict(torch.load(f, map_location="cpu", weights_only=True), strict=False)
    return model.eval()
