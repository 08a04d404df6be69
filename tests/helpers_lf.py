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
