import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from helpers_lf import TINY, deep_update, eval_context  # noqa: E402


@pytest.fixture
def recipe(tmp_path):
    """Write a tiny recipe (with updates) to a YAML file and return its path."""

    def make(update: dict | None = None, name: str = "tiny_test.yaml") -> Path:
        p = tmp_path / name
        p.write_text(yaml.safe_dump(deep_update(TINY, update or {})))
        return p

    return make


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from lorafair.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def make_ctx(tmp_path):
    """The one EvalContext factory of the tests: ``make_ctx(study=None, *, model=None, tokenizer=None,
    study_config=None, variant="base", method=None, rank=None, seed=0, out_dir=tmp_path, config=None,
    reference=None, base_view=None, heldout_data=None, progress=False, **fields)``; see
    :func:`helpers_lf.eval_context` (module-scoped fixtures and module-level helpers call that directly)."""

    def make(study=None, **kw):
        kw.setdefault("out_dir", tmp_path)
        return eval_context(study, **kw)

    return make


@pytest.fixture
def figure_texts(monkeypatch):
    """Every Text of every figure the report draws (after drawing: tick labels included)."""
    from matplotlib.text import Text

    from lorafair.report import plots

    seen: list[tuple[str, bool, bool]] = []
    real = plots.fig_to_png

    def spy(fig):
        png = real(fig)
        seen.extend((t.get_text(), t.get_parse_math(), t.get_usetex()) for t in fig.findobj(Text))
        return png

    monkeypatch.setattr(plots, "fig_to_png", spy)
    return seen
