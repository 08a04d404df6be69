"""``jigsaw-bilstm``: the Keras BiLSTM of the PyPI package ``toxic-comment-classifier``, run in PyTorch.

The package (installed ``--no-deps``; it is never imported, its files are located with
``importlib.util.find_spec``) ships ``toxic_classifier/model/model.weights.h5`` (Keras 3 weights)
and ``tokenizer.pickle`` (a fitted Keras ``Tokenizer``). Its ``model.py`` builds::

    Input(100) -> Embedding(20000, 50) -> Bidirectional(LSTM(50, return_sequences=True))
      -> GlobalMaxPooling1D -> Dense(50, relu) -> Dropout(0.1) -> Dense(6, sigmoid)

and scores a text with ``pad_sequences(tokenizer.texts_to_sequences([text]), maxlen=100)``
(pre-padding, pre-truncation, no mask). Labels: the six of the Jigsaw Toxic Comment
Classification Challenge. A Keras LSTM uses gates (i, f, c, o), sigmoid recurrent activation and
tanh activation, as ``torch.nn.LSTM`` (gates i, f, g, o), so the weights map one to one:
``weight_ih = kernel.T``, ``weight_hh = recurrent_kernel.T``, ``bias_ih = bias``, ``bias_hh = 0``.
Scores match the original TensorFlow model within 1e-4 (``tests/data/jigsaw_reference.json``,
made by ``scripts/make_jigsaw_reference.py``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lorafair.errors import UserError
from lorafair.atomic import atomic_write_json
from lorafair.scorers.base import SCORERS
from lorafair.scorers.cache import cache_dir, sha256_file
from lorafair.scorers.keras_text import KerasTokenizer, pad_sequences
from lorafair.scorers.safe_pickle import load_tokenizer_state

log = logging.getLogger(__name__)

PACKAGE = "toxic_classifier"
DISTRIBUTION = "toxic-comment-classifier"
LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
MAXLEN = 100  # toxic_classifier/model.py: MAXLEN
VOCAB_SIZE = 20000  # Embedding input_dim
EMBEDDING_DIM = 50
LSTM_UNITS = 50
DENSE_UNITS = 50


def package_model_dir() -> Path | None:
    """``toxic_classifier/model`` of the installed package, found without importing it."""
    from lorafair.packages import package_dir

    root = package_dir(PACKAGE)
    d = root / "model" if root else None
    if d is not None and (d / "model.weights.h5").is_file() and (d / "tokenizer.pickle").is_file():
        return d
    return None


def package_version() -> str | None:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def load_tokenizer(pickle_path: Path, cache: Path | None = None) -> KerasTokenizer:
    """The package's tokenizer: from the JSON cache (keyed by the pickle's sha256) or, the first
    time, from the pickle through the restricted unpickler, then cached atomically as JSON."""
    digest = sha256_file(pickle_path)
    cache_file = (cache or cache_dir()) / "scorers" / "jigsaw-bilstm" / f"tokenizer-{digest[:16]}.json"
    if cache_file.is_file():
        try:
            obj = json.loads(cache_file.read_text(encoding="utf-8"))
            if obj.get("source_sha256") == digest:
                return KerasTokenizer.from_json(obj)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable tokenizer cache %s", cache_file)
    tok = KerasTokenizer.from_state(load_tokenizer_state(pickle_path.read_bytes()))
    obj = tok.to_json()
    obj["source_sha256"] = digest
    try:
        atomic_write_json(cache_file, obj)
    except OSError as e:  # a read-only cache must not stop scoring
        log.warning("could not cache the tokenizer at %s: %s", cache_file, e)
    return tok


def _build_torch_model():
    import torch
    from torch import nn

    class BiLSTMClassifier(nn.Module):
        """Embedding -> BiLSTM (concat) -> max over time -> Dense relu -> Dense sigmoid."""

        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(VOCAB_SIZE, EMBEDDING_DIM)
            self.lstm = nn.LSTM(EMBEDDING_DIM, LSTM_UNITS, batch_first=True, bidirectional=True)
            self.dense = nn.Linear(2 * LSTM_UNITS, DENSE_UNITS)
            self.out = nn.Linear(DENSE_UNITS, len(LABELS))

        def forward(self, ids: "torch.Tensor") -> "torch.Tensor":
            h, _ = self.lstm(self.embedding(ids))  # (B, T, 2*units): [forward, backward]
            pooled = h.max(dim=1).values
            return torch.sigmoid(self.out(torch.relu(self.dense(pooled))))

    return BiLSTMClassifier()


def load_keras_weights(model, h5_path: Path) -> None:
    """Copy the Keras 3 ``model.weights.h5`` arrays into the torch module (shapes checked)."""
    import h5py
    import torch

    def t(a: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(np.asarray(a, dtype=np.float32))

    with h5py.File(h5_path, "r") as f:
        L = f["layers"]
        sd = {"embedding.weight": t(L["embedding/vars/0"][()])}
        for keras_dir, suffix in (("forward_layer", ""), ("backward_layer", "_reverse")):
            cell = L[f"bidirectional/{keras_dir}/cell/vars"]
            kernel, recurrent, bias = cell["0"][()], cell["1"][()], cell["2"][()]
            sd[f"lstm.weight_ih_l0{suffix}"] = t(kernel.T)
            sd[f"lstm.weight_hh_l0{suffix}"] = t(recurrent.T)
            sd[f"lstm.bias_ih_l0{suffix}"] = t(bias)
            sd[f"lstm.bias_hh_l0{suffix}"] = torch.zeros(4 * LSTM_UNITS)
        sd["dense.weight"] = t(L["dense/vars/0"][()].T)
        sd["dense.bias"] = t(L["dense/vars/1"][()])
        sd["out.weight"] = t(L["dense_1/vars/0"][()].T)
        sd["out.bias"] = t(L["dense_1/vars/1"][()])
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in sd.items()}
    if expected != got:
        raise ValueError(f"unexpected weight shapes in {h5_path}: {got} != {expected}")
    model.load_state_dict(sd)


@lru_cache(maxsize=4)
def _load(model_dir: str, device: str):
    d = Path(model_dir)
    model = _build_torch_model()
    load_keras_weights(model, d / "model.weights.h5")
    model.eval().to(device)
    return model, load_tokenizer(d / "tokenizer.pickle"), sha256_file(d / "model.weights.h5")


@SCORERS.register("jigsaw-bilstm", help="Keras BiLSTM of toxic-comment-classifier (6 Jigsaw labels), in PyTorch; offline default")
class JigsawBiLSTMScorer:
    """Six Jigsaw toxicity labels from the ``toxic-comment-classifier`` BiLSTM, run in PyTorch."""

    name = "jigsaw-bilstm"
    labels = LABELS
    main_label = "toxic"

    def __init__(self, arg: str | None = None, device: Any = "cpu", *, model_dir: str | Path | None = None, **_: Any):
        if arg:
            raise UserError("scorer", f"jigsaw-bilstm:{arg}", "jigsaw-bilstm without an argument")
        d = Path(model_dir) if model_dir else package_model_dir()
        if d is None:
            raise UserError.plain(
                f"scorer 'jigsaw-bilstm' needs the package {DISTRIBUTION}: pip install --no-deps {DISTRIBUTION}"
            )
        self.model_dir = d
        self.device = str(device)
        self.model, self.tokenizer, self.weights_sha256 = _load(str(d), self.device)

    @classmethod
    def available(cls, arg: str | None = None) -> tuple[bool, str]:
        d = package_model_dir()
        if d is None:
            return False, f"pip install --no-deps {DISTRIBUTION}"
        return True, f"{DISTRIBUTION} {package_version()}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 100) word ids exactly as the package feeds Keras."""
        return pad_sequences(self.tokenizer.texts_to_sequences(texts), MAXLEN, padding="pre", truncating="pre")

    def score(self, texts: Sequence[str], batch_size: int = 64) -> list[dict[str, float]]:
        import torch

        out: list[dict[str, float]] = []
        ids = self.encode(list(texts))
        with torch.inference_mode():
            for start in range(0, len(ids), max(1, batch_size)):
                batch = torch.from_numpy(ids[start : start + batch_size]).to(self.device)
                probs = self.model(batch).float().cpu().numpy()
                out.extend({lab: float(p) for lab, p in zip(LABELS, row)} for row in probs)
        return out

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "package": DISTRIBUTION,
            "version": package_version(),
            "weights": "model.weights.h5",
            "weights_sha256": self.weights_sha256,
            "labels": list(LABELS),
            "main_label": self.main_label,
            "runtime": "pytorch port (no TensorFlow)",
        }
