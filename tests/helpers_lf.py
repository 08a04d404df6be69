"""Shared test constants and helpers (imported as `helpers_lf`; tests/ is on pythonpath)."""

import subprocess
import sys

TINY = {
    "name": "t",
    "model": {"source": "tiny:llama"},
    "seeds": [0],
    "variants": {"base": True, "full": {"enabled": True, "lr": 1e-3}, "lora": {"ranks": [1, 4], "lr": 1e-2}},
    "train": {"max_steps": 3, "batch_size": 4, "max_length": 32},
    "data": {"train": {"source": "bold-wiki", "limit": 24}, "holdout": 0.25},
    "studies": {"heldout": {"max_length": 32}},
}


def deep_update(d: dict, u: dict) -> dict:
    out = dict(d)
    for k, v in u.items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out



def run_cli_subprocess(*args, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "lorafair", *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)


def one_error_line(code, err):
    """The CLI's contract for bad input: exit 2 and exactly one line ``error: …``, no traceback."""
    assert code == 2, err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# -- the one EvalContext factory (the ``make_ctx`` fixture of conftest.py wraps it) -------------------

def _variant_info(variant, method=None, rank=None):
    """A VariantInfo from a VariantInfo or a variant name ("base", "full", "lora-r2", "pissa-r4" …)."""
    from lorafair.run.layout import parse_variant
    from lorafair.studies.base import VariantInfo

    if isinstance(variant, VariantInfo):
        return variant
    parsed_method, parsed_rank = parse_variant(variant)
    return VariantInfo(variant, method or parsed_method, parsed_rank if rank is None else rank)


def eval_context(study=None, *, out_dir, model=None, tokenizer=None, study_config=None, variant="base",
                 method=None, rank=None, seed=0, config=None, reference=None, base_view=None, heldout_data=None,
                 progress=False, log=None, device="cpu", **fields):
    """An EvalContext as the runner builds one, on CPU, progress bars off.

    - ``study``: a registered name or a study class; used to build ``study_config`` when it is a dict
      or None (the study's defaults). A Config instance is used as is.
    - ``model``/``tokenizer``: default a fresh ``tiny:llama`` (seed 0); a model alone keeps its own
      tokenizer only when ``tokenizer`` is given too.
    - ``variant``: a VariantInfo or a name ("base", "full", "lora-r2": method and rank parsed from it,
      or given with ``method``/``rank``).
    - ``reference``: a callable ``name -> model`` or a dict of models by name.
    - ``out_dir`` is created. Any other keyword is passed to EvalContext as a field, so fields added to
      it later (with defaults) keep working.
    """
    import logging
    from pathlib import Path

    import torch

    from lorafair.studies.base import STUDIES, EvalContext

    cls = STUDIES.get(study) if isinstance(study, str) else study
    if study_config is None or isinstance(study_config, dict):
        if cls is None:
            raise TypeError("eval_context: give a study (name or class) or a study_config instance")
        study_config = cls.Config(**(study_config or {}))
    if model is None or tokenizer is None:
        from lorafair.models.tiny import build_tiny

        tiny_model, tiny_tok = build_tiny("llama")
        model = tiny_model if model is None else model
        tokenizer = tiny_tok if tokenizer is None else tokenizer
    if isinstance(reference, dict):
        refs = reference
        reference = lambda name: refs[name]  # noqa: E731
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return EvalContext(
        model=model, tokenizer=tokenizer, device=torch.device(device), variant=_variant_info(variant, method, rank),
        seed=seed, out_dir=out_dir, config=config, study_config=study_config,
        log=log or logging.getLogger("test"), progress=progress, reference=reference, base_view=base_view,
        heldout_data=heldout_data, **fields,
    )


class HashScorer:
    """Deterministic offline toxicity scorer: toxic = (SHA-256 of the text mod 1000) / 1000; empty text 0."""

    labels = ("toxic", "insult")
    main_label = "toxic"

    def __init__(self, name: str):
        self.name = name

    def score(self, texts, batch_size=64):
        import hashlib

        out = []
        for t in texts:
            v = int(hashlib.sha256(t.encode()).hexdigest(), 16) % 1000 / 1000 if t else 0.0
            out.append({"toxic": v, "insult": v / 2})
        return out

    def identity(self):
        return {"name": self.name, "version": "0"}


def hash_scorer(name: str) -> str:
    """Register :class:`HashScorer` as scorer ``name`` (once) and return the name, for a study config."""
    from lorafair.scorers.base import SCORERS

    if name not in SCORERS:
        SCORERS.register(name)(lambda arg, device: HashScorer(name))
    return name
