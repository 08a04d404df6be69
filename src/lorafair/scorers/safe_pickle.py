"""Read the Keras ``Tokenizer`` pickle shipped by ``toxic-comment-classifier`` without running code.

A pickle can call any importable callable while loading. :class:`RestrictedUnpickler` resolves
only the globals in :data:`ALLOWED`: three plain containers (``OrderedDict``, ``defaultdict`` and
``int`` as its default factory) and the Keras tokenizer class, which is *replaced* by
:class:`TokenizerState`, an inert attribute bag (Keras itself is never imported). Any other global
raises :class:`pickle.UnpicklingError`; so does a ``REDUCE`` on anything but these.
"""

from __future__ import annotations

import collections
import io
import pickle
from typing import Any


class TokenizerState:
    """Inert stand-in for ``keras...text.Tokenizer``: the unpickler fills ``__dict__`` (BUILD)."""

    def __reduce__(self):  # never re-pickled
        raise TypeError("TokenizerState is not picklable")


_KERAS_TOKENIZER_MODULES = (
    "keras.src.legacy.preprocessing.text",  # Keras 3
    "keras.preprocessing.text",  # Keras 2 / tf.keras
    "keras_preprocessing.text",  # the old standalone package
    "tensorflow.python.keras.preprocessing.text",
)

ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("builtins", "int"): int,
    **{(m, "Tokenizer"): TokenizerState for m in _KERAS_TOKENIZER_MODULES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose ``find_class`` returns only the entries of :data:`ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name} in pickle (only plain containers allowed)") from None


def load_tokenizer_state(data: bytes) -> dict[str, Any]:
    """Unpickle a Keras tokenizer pickle and return its attributes as a dict of plain values."""
    obj = RestrictedUnpickler(io.BytesIO(data)).load()
    if not isinstance(obj, TokenizerState):
        raise pickle.UnpicklingError(f"expected a Keras Tokenizer pickle, got {type(obj).__name__}")
    return dict(vars(obj))
