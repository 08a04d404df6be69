"""Keras' legacy text preprocessing, reproduced exactly (no TensorFlow).

Source of truth: ``keras/src/legacy/preprocessing/text.py`` (``text_to_word_sequence``,
``Tokenizer.texts_to_sequences_generator``) and ``keras/src/utils/sequence_utils.py``
(``pad_sequences``) of Keras 3.x; the same logic as Keras 2's ``keras_preprocessing``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def text_to_word_sequence(text: str, filters: str = KERAS_FILTERS, lower: bool = True, split: str = " ") -> list[str]:
    """Lower-case (``str.lower``), map every filter character to ``split``, split on ``split``
    and drop empty pieces. Other whitespace (``\\r``, no-break space …) is *not* a separator."""
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


@dataclass
class KerasTokenizer:
    """The state of a fitted ``keras.preprocessing.text.Tokenizer`` needed to encode texts."""

    word_index: dict[str, int]
    num_words: int | None = None
    filters: str = KERAS_FILTERS
    lower: bool = True
    split: str = " "
    oov_token: str | None = None
    char_level: bool = False

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "KerasTokenizer":
        if state.get("analyzer") is not None:
            raise ValueError("tokenizers with a custom analyzer are not supported")
        return cls(
            word_index=dict(state["word_index"]),
            num_words=state.get("num_words"),
            filters=state.get("filters", KERAS_FILTERS),
            lower=bool(state.get("lower", True)),
            split=state.get("split", " "),
            oov_token=state.get("oov_token"),
            char_level=bool(state.get("char_level", False)),
        )

    def to_json(self, keep_all: bool = False) -> dict[str, Any]:
        """Plain-JSON form. Unless ``keep_all``, only words that can be emitted are kept
        (index < num_words, plus the OOV token): encoding is unchanged."""
        wi = self.word_index
        if not keep_all and self.num_words:
            wi = {w: i for w, i in wi.items() if i < self.num_words or w == self.oov_token}
        return {
            "word_index": wi,
            "num_words": self.num_words,
            "filters": self.filters,
            "lower": self.lower,
            "split": self.split,
            "oov_token": self.oov_token,
            "char_level": self.char_level,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "KerasTokenizer":
        return cls(**{k: obj[k] for k in ("word_index", "num_words", "filters", "lower", "split", "oov_token", "char_level")})

    def texts_to_sequences(self, texts: Sequence[str]) -> list[list[int]]:
        """Word ids per text, as Keras: unknown words dropped (or the OOV id if the tokenizer
        has an OOV token); known words with id >= num_words dropped (or OOV id)."""
        oov_index = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        out = []
        for text in texts:
            if self.char_level:
                seq: Sequence[str] = text.lower() if self.lower else text
            else:
                seq = text_to_word_sequence(text, self.filters, self.lower, self.split)
            vect = []
            for w in seq:
                i = self.word_index.get(w)
                if i is not None:
                    if self.num_words and i >= self.num_words:
                        if oov_index is not None:
                            vect.append(oov_index)
                    else:
                        vect.append(i)
                elif self.oov_token is not None:
                    vect.append(oov_index)
            out.append(vect)
        return out


def pad_sequences(sequences: Sequence[Sequence[int]], maxlen: int, padding: str = "pre", truncating: str = "pre", value: int = 0) -> np.ndarray:
    """Keras ``pad_sequences`` for int sequences: an int64 array (n, maxlen); ``truncating="pre"``
    keeps the *last* ``maxlen`` ids, ``padding="pre"`` puts ``value`` before the ids."""
    out = np.full((len(sequences), maxlen), value, dtype=np.int64)
    for row, seq in enumerate(sequences):
        if not len(seq):
            continue
        trunc = list(seq[-maxlen:]) if truncating == "pre" else list(seq[:maxlen])
        if padding == "pre":
            out[row, maxlen - len(trunc):] = trunc
        else:
            out[row, : len(trunc)] = trunc
    return out
