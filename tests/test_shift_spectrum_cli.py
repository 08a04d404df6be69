import json

import pytest
import torch

from lorafair.cli import main
from lorafair.models.tiny import build_tiny


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    base, tok = build_tiny("llama")
    base.save_pretrained(d / "base")
    tok.save_pretrained(d / "base")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in base.model.layers:
            w = layer.self_attn.q_proj.weight
            w += 0.1 * torch.randn(w.shape[0], 3, generator=g) @ torch.randn(3, w.shape[1], generator=g)
    base.save_pretrained(d / "full")
    tok.save_pretrained(d / "full")
    gpt, gtok = build_tiny("gpt2")
    gpt.save_pretrained(d / "gpt2")
    gtok.save_pretrained(d / "gpt2")
    return d


def test_spectrum_json(checkpoints, capsys):
    d = checkpoints
    assert main(["spectrum", f"hf:{d / 'base'}", f"hf:{d / 'full'}", "--ranks", "1", "3", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ranks"] == [1, 3, 8]
    mods = {m["name"]: m for m in out["modules"]}
    q = mods["model.layers.0.self_attn.q_proj"]
    assert q["shape"] == [64, 64] and len(q["singular_values"]) == 64
    assert q["energy"]["3"] == pytest.approx(1.0, abs=1e-5) and q["energy"]["1"] < 1
    assert 1 < q["effective_rank"] <= 3.001
    assert mods["model.layers.0.mlp.up_proj"]["effective_rank"] == 0.0


def test_spectrum_table(checkpoints, capsys):
    d = checkpoints
    assert main(["spectrum", f"hf:{d / 'base'}", f"hf:{d / 'full'}", "--ranks", "1", "3"]) == 0
    out = capsys.readouterr().out
    assert "self_attn.q_proj" in out and "E@3" in out
    line = next(l for l in out.splitlines() if l.startswith("self_attn.q_proj"))
    assert line.split()[-1] == "1.000"


def test_spectrum_errors(checkpoints, capsys):
    d = checkpoints
    assert main(["spectrum", f"hf:{d / 'base'}", f"hf:{d / 'gpt2'}"]) == 2
    assert "different architectures" in capsys.readouterr().err
    assert main(["spectrum", f"hf:{d / 'base'}", f"hf:{d / 'full'}", "--ranks", "0"]) == 2
    assert "--ranks=0" in capsys.readouterr().err
