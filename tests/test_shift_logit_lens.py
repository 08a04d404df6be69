import pytest
import torch

from lorafair.errors import UserError
from lorafair.models.tiny import build_tiny
from lorafair.studies.shift.logit_lens import find_final_norm, lens_head, lens_logits, toxic_mass
from lorafair.studies.shift.toxic_vocab import load_words, token_ids_for_words

IDS = torch.tensor([[5, 60, 70, 80, 90, 7], [9, 8, 7, 6, 5, 4]])


def test_llama_lens_equals_manual():
    model, _ = build_tiny("llama")
    with torch.no_grad():
        out = model(IDS, output_hidden_states=True)
        get = lens_logits(model, out.hidden_states, out.logits)
        L = len(out.hidden_states) - 1
        assert L == model.config.num_hidden_layers
        for layer in range(L):
            manual = model.lm_head(model.model.norm(out.hidden_states[layer]))
            torch.testing.assert_close(get(layer), manual)
        torch.testing.assert_close(get(L), out.logits)
        # the last hidden state is already normalised: unembedding it gives the logits
        torch.testing.assert_close(model.lm_head(out.hidden_states[L]), out.logits)


@pytest.mark.parametrize("arch,path", [("gpt2", "transformer.ln_f"), ("opt", "model.decoder.final_layer_norm"), ("llama", "model.norm")])
def test_final_norm_found(arch, path):
    model, _ = build_tiny(arch)
    mod = model
    for p in path.split("."):
        mod = getattr(mod, p)
    assert find_final_norm(model) is mod
    assert lens_head(model).unembed is model.get_output_embeddings()


def test_lens_on_peft_model():
    from peft import LoraConfig, get_peft_model

    model, _ = build_tiny("llama")
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert find_final_norm(peft_model) is model.model.norm


def test_no_norm_is_user_error():
    model, _ = build_tiny("llama")
    model.model.norm = None
    del model.model.norm
    with pytest.raises(UserError, match="final norm"):
        find_final_norm(model)


def test_toxic_mass():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    assert toxic_mass(logits, torch.tensor([1, 3])).item() == pytest.approx(0.6)


def test_toxic_vocab_words(tmp_path):
    f = tmp_path / "w.txt"
    f.write_text("# comment\nbadword\n\nugly\nbadword\n")
    assert load_words(str(f)) == ["badword", "ugly"]
    words = load_words("better-profanity")
    assert len(words) > 500
    with pytest.raises(UserError, match="toxic_vocab"):
        load_words(str(tmp_path / "missing.txt"))
    # a byte tokenizer's first tokens are single characters: filtered out
    _, tok = build_tiny("llama")
    assert token_ids_for_words(tok, ["badword"]) == []
    assert token_ids_for_words(tok, ["badword"], min_chars=1) == [tok("b", add_special_tokens=False)["input_ids"][0]]


class WordTok:
    """A word-level tokenizer stub: each whitespace word (with its leading space) is one token."""

    all_special_ids = [0]

    def __init__(self):
        self.vocab = {}

    def __call__(self, text, add_special_tokens=False):
        pieces, cur = [], ""
        for ch in text:
            if ch == " " and cur:
                pieces.append(cur)
                cur = ""
            cur += ch
        pieces.append(cur)
        return {"input_ids": [self.vocab.setdefault(p, len(self.vocab) + 1) for p in pieces]}

    def decode(self, ids):
        inv = {v: k for k, v in self.vocab.items()}
        return "".join(inv[i] for i in ids)


def test_token_ids_first_token_of_both_spellings():
    tok = WordTok()
    ids = token_ids_for_words(tok, ["damn", "hell"])
    assert ids == sorted({tok.vocab[" damn"], tok.vocab["damn"], tok.vocab[" hell"], tok.vocab["hell"]})
