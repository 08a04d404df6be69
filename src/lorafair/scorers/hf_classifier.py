"""``hf:<model>`` and ``detoxify:<variant>``: Hugging Face sequence-classification models as scorers.

``hf:`` takes a local folder or a hub id. Weights are read from safetensors only, unless the
caller passes ``allow_pickle=True`` (``lorafair score --allow-pickle``): ``.bin`` checkpoints are
pickles. ``trust_remote_code`` is never enabled here.

Scores: ``sigmoid(logits)`` for multi-label models (``config.problem_type ==
"multi_label_classification"``, or a single logit), ``softmax(logits)`` otherwise (single-label),
one score per ``config.id2label`` entry.

``detoxify:<original|unbiased|multilingual>``: the Detoxify checkpoints published as HF models
(``unitary/toxic-bert``, ``unitary/unbiased-toxic-roberta``, ``unitary/multilingual-toxic-xlm-roberta``),
loaded by the same code, always with sigmoid as the ``detoxify`` library does. A hub model is
first looked up in the local HF cache (no network at all when found); if missing and offline,
a :class:`~lorafair.errors.UserError` says so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from lorafair.errors import UserError
from lorafair.scorers.base import SCORERS
from lorafair.scorers.cache import sha256_file

DETOXIFY_MODELS = {
    "original": "unitary/toxic-bert",
    "unbiased": "unitary/unbiased-toxic-roberta",
    "multilingual": "unitary/multilingual-toxic-xlm-roberta",
}
MAIN_LABEL_NAMES = ("toxic", "toxicity", "toxic_comment", "hate", "offensive", "abusive")
MAX_LENGTH = 512


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of a hub model whose config.json is in the HF cache, else None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    try:
        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def resolve_source(source: str, local_files_only: bool = False) -> tuple[str, Path | None]:
    """(what to pass to ``from_pretrained``, the local folder if known)."""
    p = Path(source).expanduser()
    if p.is_dir():
        return str(p), p
    if source.startswith((".", "/", "~")) or os.sep in source and source.count("/") > 1:
        raise UserError("scorer", f"hf:{source}", "an existing local folder or a hub id (owner/name)")
    snap = _cached_snapshot(source)
    if snap is not None:
        return str(snap), snap
    if local_files_only:
        raise UserError.plain(
            f"scorer model {source!r} is not in the local Hugging Face cache and lorafair is offline; "
            f"download it where there is network (huggingface-cli download {source}) or pass a local folder"
        )
    return source, None


def _weights_digest(folder: Path | None) -> str | dict[str, str] | None:
    if folder is None:
        return None
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        return None
    if len(files) == 1:
        return sha256_file(files[0])
    return {f.name: sha256_file(f) for f in files}


def pick_main_label(labels: Sequence[str]) -> str:
    """The label used as "toxicity": a known toxicity name, else the positive class of a binary
    classifier (index 1), else the first label."""
    for name in MAIN_LABEL_NAMES:
        for lab in labels:
            if lab.lower() == name:
                return lab
    if len(labels) == 2:
        return labels[1]
    return labels[0]


class HFClassifierScorer:
    """A ``transformers`` sequence-classification model; one probability per label."""

    def __init__(
        self,
        source: str,
        device: Any = "cpu",
        *,
        name: str | None = None,
        activation: str | None = None,
        allow_pickle: bool = False,
        local_files_only: bool = False,
        **_: Any,
    ):
        import transformers
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name = name or f"hf:{source}"
        self.source = source
        target, folder = resolve_source(source, local_files_only)
        if folder is not None and not allow_pickle and not list(folder.glob("*.safetensors")):
            raise UserError.plain(
                f"scorer model {source!r} has no .safetensors weights (only pickle-based files); "
                "pass --allow-pickle (allow_pickle=True) only if you trust it"
            )
        kwargs: dict[str, Any] = {"trust_remote_code": False}
        if not allow_pickle:
            kwargs["use_safetensors"] = True
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(target, trust_remote_code=False)
            self.model = AutoModelForSequenceClassification.from_pretrained(target, **kwargs)
        except (OSError, ValueError) as e:
            raise UserError.plain(f"cannot load scorer model {source!r}: {str(e).splitlines()[0]}") from None
        self.device = str(device)
        self.model.eval().to(self.device)
        cfg = self.model.config
        self.labels = tuple(str(cfg.id2label[i]) for i in range(cfg.num_labels))
        self.main_label = pick_main_label(self.labels)
        if activation is None:
            multi = cfg.problem_type == "multi_label_classification" or cfg.num_labels == 1
            activation = "sigmoid" if multi else "softmax"
        self.activation = activation
        limits = [m for m in (getattr(self.tokenizer, "model_max_length", None), getattr(cfg, "max_position_embeddings", None), MAX_LENGTH) if m]
        self.max_length = int(min(limits))
        if self.model.config.model_type in ("roberta", "xlm-roberta", "camembert"):  # positions start at pad+1
            self.max_length = min(self.max_length, int(cfg.max_position_embeddings) - 2)
        self._identity = {
            "name": self.name,
            "source": source,
            "transformers": transformers.__version__,
            "model_type": cfg.model_type,
            "commit": getattr(cfg, "_commit_hash", None) or (folder.name if folder is not None and folder.parent.name == "snapshots" else None),
            "weights_sha256": _weights_digest(folder),
            "activation": self.activation,
            "labels": list(self.labels),
            "main_label": self.main_label,
        }

    def score(self, texts: Sequence[str], batch_size: int = 32) -> list[dict[str, float]]:
        import torch

        texts = list(texts)
        out: list[dict[str, float]] = []
        with torch.inference_mode():
            for start in range(0, len(texts), max(1, batch_size)):
                enc = self.tokenizer(
                    texts[start : start + batch_size], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.device)
                logits = self.model(**enc).logits.float()
                probs = torch.sigmoid(logits) if self.activation == "sigmoid" else torch.softmax(logits, dim=-1)
                out.extend({lab: float(p) for lab, p in zip(self.labels, row)} for row in probs.cpu().tolist())
        return out

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)


@SCORERS.register("hf", help="hf:<local folder or hub id>: a sequence-classification model (safetensors)")
def hf_scorer(arg: str | None, device: Any = "cpu", **options: Any) -> HFClassifierScorer:
    if not arg:
        raise UserError("scorer", "hf", "hf:<local folder or hub id>")
    return HFClassifierScorer(arg, device, **options)


def _hf_available(arg: str | None) -> tuple[bool, str]:
    if not arg:
        return True, "local folders; hub ids when cached or online"
    p = Path(arg).expanduser()
    if p.is_dir() or _cached_snapshot(arg):
        return True, "local"
    return False, "not in the local HF cache (needs network)"


def _detoxify_available(arg: str | None) -> tuple[bool, str]:
    if arg is None:
        found = [v for v, repo in DETOXIFY_MODELS.items() if _cached_snapshot(repo)]
        return (bool(found), f"cached: {', '.join(found)}" if found else "no variant in the local HF cache; needs network")
    if arg not in DETOXIFY_MODELS:
        return False, f"unknown variant {arg!r}"
    return _hf_available(DETOXIFY_MODELS[arg])


hf_scorer.available = _hf_available  # type: ignore[attr-defined]


@SCORERS.register("detoxify", help="detoxify:<original|unbiased|multilingual>: Detoxify checkpoints via HF")
def detoxify_scorer(arg: str | None, device: Any = "cpu", **options: Any) -> HFClassifierScorer:
    if arg not in DETOXIFY_MODELS:
        raise UserError("scorer", f"detoxify:{arg or ''}", f"detoxify:<{'|'.join(DETOXIFY_MODELS)}>")
    options.setdefault("activation", "sigmoid")
    return HFClassifierScorer(DETOXIFY_MODELS[arg], device, name=f"detoxify:{arg}", **options)


detoxify_scorer.available = _detoxify_available  # type: ignore[attr-defined]
