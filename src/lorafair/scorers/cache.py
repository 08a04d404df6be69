"""Where scorers cache derived files (e.g. the Jigsaw tokenizer as JSON).

``$LORAFAIR_CACHE`` when set, else ``platformdirs.user_cache_dir("lorafair")``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """The lorafair cache folder (not created here)."""
    env = os.environ.get("LORAFAIR_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lorafair"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
