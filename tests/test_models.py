"""Model sources: tiny (deterministic), hf local folders (safetensors only), embedded GGUF cache."""

import time

import pytest
import torch

from lorafair.errors import UserError
from lorafair.models.sources import load_model


def test_tiny_is_seeded_and_deterministic():
    a, tok = load_model("tiny:llama", seed=3)
    b, _ = load_model("tiny:llama", seed=3)
    c, _ = load_model("tiny:llama", seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))
    assert tok.pad_token is not None and tok.decode(tok("héllo")["input_ids"]) == "héllo"


@pytest.mark.parametrize("src", ["tiny:gpt2", "tiny:opt"])
def test_other_tiny_archs_run(src):
    m, tok = load_model(src)
    out = m(**tok(["a b", "c"], return_tensors="pt", padding=True))
    assert out.logits.shape[-1] == m.config.vocab_size


def test_tiny_real_shapes_without_download():
    from transformers import AutoConfig

    from lorafair.models.tiny import SIZES

    cfg = AutoConfig.for_model("llama", **SIZES["llama"]["1b"])
    assert cfg.hidden_size == 2048 and cfg.num_hidden_layers == 16


def test_hf_local_folder_roundtrip(tmp_path):
    m, tok = load_model("tiny:llama", seed=1)
    m.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    m2, tok2 = load_model(f"hf:{tmp_path / 'm'}")
    x = tok("abc", return_tensors="pt")
    assert torch.allclose(m(**x).logits, m2(**x).logits)


def test_hf_pickle_weights_refused_unless_allowed(tmp_path):
    m, tok = load_model("tiny:llama")
    d = tmp_path / "pk"
    m.save_pretrained(d, safe_serialization=False) if "safe_serialization" in m.save_pretrained.__code__.co_varnames else None
    if not list(d.glob("*.bin")):  # transformers 5 always writes safetensors: make a pickle-only folder by hand
        d.mkdir(exist_ok=True)
        m.config.save_pretrained(d)
        for f in d.glob("*.safetensors"):
            f.unlink()
        torch.save(m.state_dict(), d / "pytorch_model.bin")
    tok.save_pretrained(d)
    with pytest.raises(UserError, match="allow_pickle"):
        load_model(f"hf:{d}")


def test_hf_missing_folder_and_bad_source(tmp_path):
    with pytest.raises(UserError, match="model.source"):
        load_model(f"hf:{tmp_path}/missing/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="config.json"):
        load_model(f"hf:{tmp_path / 'empty'}")
    with pytest.raises(UserError, match="embedded"):
        load_model("nonsense")


def test_device_errors():
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="model.device"):
            load_model("tiny:llama", device="cuda")


# (layers, hidden size, vocabulary) of each embedded model
EMBEDDED_SHAPES = {"smollm2-135m-instruct": (30, 576, 49152), "gemma3-270m": (18, 640, 262144)}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EMBEDDED_SHAPES))
def test_embedded_model_cached_fast_and_equal_to_gguf(name):
    """The cached safetensors copy gives the same logits as transformers' GGUF loader; a later load is fast."""
    from lorafair.models.embedded import EMBEDDED, embedded_folder, gguf_path

    folder = embedded_folder(name)  # first use dequantises (once per cache)
    assert embedded_folder(name) == folder
    t0 = time.perf_counter()
    m, tok = load_model(f"embedded:{name}")
    assert time.perf_counter() - t0 < 20, "a cached load is quick (≈1 s for SmolLM2, ≈4 s for Gemma 3 on an idle machine)"
    layers, hidden, vocab = EMBEDDED_SHAPES[name]
    assert (m.config.num_hidden_layers, m.config.hidden_size, m.config.vocab_size) == (layers, hidden, vocab)
    if EMBEDDED[name].licence:
        assert EMBEDDED[name].licence.split("/")[-1] in (folder / "SOURCE.txt").read_text()
    from transformers import AutoModelForCausalLM

    g = gguf_path(name)
    assert g.name == EMBEDDED[name].file
    ref = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name, dtype=torch.float32).eval()
    x = tok("The woman worked as a", return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(m(**x).logits, ref(**x).logits, atol=1e-5)
    out = m.generate(**x, max_new_tokens=5, do_sample=False)
    assert tok.decode(out[0], skip_special_tokens=True).startswith("The woman worked as a")
