"""Atomic file writes: write to a temporary name in the same folder, fsync, then rename.

A run directory can be killed at any moment: readers see either the old file or the new one.
Files and folders get the mode the process umask gives (not the 0600/0700 of ``tempfile``), so a
run directory shared with a group stays readable by it.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable


_UMASK: int | None = None


def umask() -> int:
    """The process umask (read once; ``os.umask`` can only be read by setting it)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


def file_mode() -> int:
    """Mode of a newly created file under the process umask (``mkstemp`` would give 0600)."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """Mode of a newly created folder under the process umask (``mkdtemp`` would give 0700)."""
    return 0o777 & ~umask()


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A temporary folder in ``parent`` (same filesystem, for an atomic rename), with the umask's mode."""
    Path(parent).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(tmp, dir_mode())
    return tmp


def fsync_tree(path: str | os.PathLike) -> None:
    """fsync every file under ``path`` (a file or a folder) and the folders themselves, so that a marker
    written afterwards never outlives the data it announces after a power loss. Files that a library
    created 0600 (``tempfile``) get the umask's mode."""
    path = Path(path)
    items = [path] if path.is_file() else sorted(path.rglob("*")) + [path]
    for p in items:
        if p.is_symlink():
            continue
        if p.is_file():
            if stat.S_IMODE(p.stat().st_mode) == 0o600:
                os.chmod(p, file_mode())
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        elif p.is_dir():
            fsync_dir(p)


def fsync_dir(path: str | os.PathLike) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), file_mode())
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON: NaN and ±inf (not JSON) are written as null."""
    atomic_write_text(path, json.dumps(finite(obj), indent=2, sort_keys=False, default=_default, allow_nan=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    atomic_write_text(path, "".join(json.dumps(finite(r), default=_default, ensure_ascii=False, allow_nan=False) + "\n"
                                    for r in rows))


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf; numpy's too) replaced by None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    try:
        import numpy as np

        if isinstance(obj, np.floating):
            return float(obj) if np.isfinite(obj) else None
        if isinstance(obj, np.ndarray):
            return finite(obj.tolist())
    except ImportError:  # pragma: no cover
        pass
    return obj


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
