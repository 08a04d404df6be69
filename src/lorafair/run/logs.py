"""Logging for a run: a log file in the run directory and concise lines on stderr (quiet for CI)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def show_progress(quiet: bool) -> bool:
    """Progress bars only for an interactive terminal, never in quiet mode or CI."""
    return not quiet and sys.stderr.isatty() and not os.environ.get("CI")


def setup_logging(log_file: Path | None, quiet: bool) -> logging.Logger:
    log = logging.getLogger("lorafair")
    log.setLevel(logging.INFO)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    sh = logging.StreamHandler(sys.stderr)
    sh.setLevel(logging.WARNING if quiet else logging.INFO)
    sh.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(sh)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(fh)
    log.propagate = False
    quiet_libraries(quiet or not sys.stderr.isatty())
    return log


def quiet_libraries(no_bars: bool) -> None:
    import warnings

    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        if no_bars:
            transformers.utils.logging.disable_progress_bar()
    except Exception:  # pragma: no cover
        pass
    warnings.filterwarnings("ignore", message=".*torch.utils._pytree.*")
    # peft calls a transformers method that transformers 5 renamed; harmless, and noise for users
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
