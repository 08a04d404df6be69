"""The run directory as a whole: may this run use it, who holds it, what it reuses.

- :func:`check_out_dir` decides, *before anything is written*, whether a run may use ``--out``: a new
  directory (its nearest existing parent must be writable), or an existing run directory. An
  existing one is refused only when it holds finished pieces (trained variants, evaluations) of a
  **different experiment**: another model, training data, training settings or start stage — the
  fields every cached piece depends on. Anything else (studies, seeds, variants, ranks, learning
  rates, output options, name, description) may change: each cached piece carries its own
  fingerprint, so what is unchanged is reused and what changed is redone. A directory with no
  finished piece (say, left by a run that failed on a bad input) is always accepted.
- :class:`RunLock` holds an exclusive ``fcntl`` lock on ``RUN/.lock`` while a run works in it, so two
  runs into one directory do not both do all the work; the second gets one clear error.
- :func:`clean_stale_temporaries` removes the temporary files and folders that an interrupted write
  leaves (``.<name>.*.tmp``, ``.model.*``, ``.adapter.*``), so they never survive a later resume.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Optional

import yaml

from lorafair.adapt.checkpoint import TEMP_PREFIXES
from lorafair.errors import UserError
from lorafair.run.layout import LOCK, RunLayout

# the sections of the config that every cached piece (data, trained variants, evaluations) depends on
EXPERIMENT_FIELDS = ("model", "data", "train", "start")
LOCK_NAME = LOCK
PROBE_PREFIX = ".probe"  # the runner's check that --out is writable


def nearest_existing(path: Path) -> Path:
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def finished_pieces(out: Path | RunLayout) -> list[Path]:
    """Markers of finished work in a run directory (training, evaluations, the start stage)."""
    return RunLayout.of(out).finished_pieces()


def check_out_dir(out: Path, new_config: dict) -> None:
    """Raise :class:`UserError` (nothing written) when ``out`` cannot hold this run. See the module doc."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError("--out", str(out), "a directory (it is a file)")
    base = nearest_existing(out)
    if not base.is_dir():
        raise UserError("--out", str(out), f"a writable directory ({base} is a file)")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError("--out", str(out), f"a writable directory ({base} is not writable)")
    cfg_path = RunLayout(out).config_yaml
    if not cfg_path.is_file() or not finished_pieces(out):
        return
    try:
        old = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        old = None
    if not isinstance(old, dict):
        raise UserError("--out", str(out), "a new directory, or a run directory whose config.yaml is readable "
                        "(this one holds finished work and an unreadable config.yaml)")
    differ = [k for k in EXPERIMENT_FIELDS if _canon(old.get(k)) != _canon(new_config.get(k))]
    if differ:
        raise UserError("--out", str(out), "a new directory, or the directory of this same experiment (it holds "
                        f"finished work of a different config: {', '.join(differ)} differ; resume it with its own "
                        "config or pick another --out)")


def _canon(x):
    return yaml.safe_dump(x, sort_keys=True) if x is not None else None


class RunLock:
    """An exclusive advisory lock on ``RUN/.lock`` for the duration of a run (POSIX ``flock``)."""

    def __init__(self, out: Path):
        self.path = RunLayout.of(out).lock
        self.fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = ""
            try:
                holder = os.read(fd, 64).decode("ascii", "replace").strip()
            except OSError:
                pass
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise UserError("--out", str(self.path.parent), "a run directory that no other lorafair process is "
                                f"using (locked by {('pid ' + holder) if holder else 'another process'}; wait for it "
                                "to finish or pick another --out)") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def clean_stale_temporaries(out: Path) -> list[Path]:
    """Remove leftovers of interrupted atomic writes anywhere under ``out``; return what was removed.

    Call only while holding the run's lock (a live writer's temporaries would be removed otherwise).
    """
    removed = []
    for p in list(Path(out).rglob(".*")):
        name = p.name
        stale = (name.startswith(".") and name.endswith(".tmp")) or name.startswith(TEMP_PREFIXES + (PROBE_PREFIX,))
        if not stale or name == LOCK_NAME:
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except FileNotFoundError:
            pass
    return removed
