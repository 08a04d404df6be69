"""Every token of a scored sentence is scored, with or without a BOS token (issue #11).

The three full-sentence scoring paths: the stereotype scorer (``score_continuations`` with an empty
context), the toxicity study's perplexity (``text_nll``) and the held-out loss (``sequence_nll`` of
``text`` records). Without a BOS token the sequence starts with the EOS token, as
lm-evaluation-harness's ``prefix_token_id`` does; a tokenizer that has a BOS token but does not add
it (SmolLM2's, the byte tokenizer of ``tiny:``) gets it prepended.
"""

import numpy as np
import pytest
import torch

from lorafair.adapt.tokenize import IGNORE, encode_records, sequence_nll
from lorafair.models.tiny import build_tiny
from lorafair.studies.stereotypes.scoring import encode_pair, prefix_token_id, score_continuations
from lorafair.studies.toxicity.generation import text_nll

TEXT = "The nurse was tired."


@pytest.fixture(scope="module")
def tiny():
    return build_tiny("llama")


class NoBos:
    """The byte tokenizer of ``tiny:`` seen as one without a BOS token (as GPT-2/Qwen-style tokenizers)."""

    def __init__(self, tok):
        self._tok = tok
        self.bos_token_id, self.eos_token_id, self.pad_token_id = None, tok.eos_token_id, tok.pad_token_id

    def __call__(self, *a, **k):
        return self._tok(*a, **k)


def reference(model, prefix: int, ids: list[int]) -> np.ndarray:
    """log P(token_i | prefix, tokens < i) for every token of ``ids``, one sequence, no batching."""
    x = torch.tensor([[prefix] + ids])
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=x).logits[0].float(), dim=-1)
    return np.array([lp[i, x[0, i + 1]].item() for i in range(len(ids))])


def test_prefix_token_is_bos_else_eos(tiny):
    _, tok = tiny
    assert prefix_token_id(tok) == tok.bos_token_id
    assert prefix_token_id(NoBos(tok)) == tok.eos_token_id != tok.bos_token_id
    ctx, cont = encode_pair(NoBos(tok), "", TEXT)
    assert ctx == [tok.eos_token_id] and len(cont) == len(TEXT.encode())


@pytest.mark.parametrize("bos", [True, False])
def test_scorer_scores_every_token_of_a_sentence(tiny, bos):
    model, tok = tiny
    t = tok if bos else NoBos(tok)
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    ref = reference(model, tok.bos_token_id if bos else tok.eos_token_id, ids)
    got = score_continuations(model, t, [("", TEXT), ("", "Another, longer sentence to pad against.")], batch_size=2)[0]
    assert got.n_tokens == len(ids) == len(TEXT.encode())
    assert got.token_ids == ids
    np.testing.assert_allclose(got.token_logprobs, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bos", [True, False])
def test_text_nll_scores_every_token(tiny, bos):
    model, tok = tiny
    t = tok if bos else NoBos(tok)
    ids = tok(TEXT)["input_ids"]
    assert ids[0] != tok.bos_token_id  # the byte tokenizer adds no BOS by itself (as SmolLM2's)
    ref = reference(model, tok.bos_token_id if bos else tok.eos_token_id, ids)
    (nll, n), (nll2, n2) = text_nll(model, t, [TEXT, TEXT + " And a longer second text."], batch_size=2)
    assert n == len(ids)
    assert nll == pytest.approx(-ref.sum(), rel=1e-5)
    (alone, n1), = text_nll(model, t, [TEXT])
    assert (alone, n1) == (pytest.approx(nll, rel=1e-5), n)
    # truncation keeps max_length tokens, the prefix included: max_length - 1 predicted tokens
    (_, n_cut), = text_nll(model, t, [TEXT], max_length=6)
    assert n_cut == 5


def test_text_nll_does_not_double_a_bos_the_tokenizer_adds(tiny):
    model, tok = tiny

    class AddsBos(NoBos):
        def __init__(self, tok):
            super().__init__(tok)
            self.bos_token_id = tok.bos_token_id

        def __call__(self, text, **k):
            return {"input_ids": [self.bos_token_id] + self._tok(text, add_special_tokens=False)["input_ids"]}

    (nll, n), = text_nll(model, AddsBos(tok), [TEXT])
    (nll0, n0), = text_nll(model, tok, [TEXT])
    assert (nll, n) == (pytest.approx(nll0, rel=1e-6), n0) and n == len(TEXT.encode())


def test_sequence_nll_of_text_records_scores_every_token(tiny):
    model, tok = tiny
    enc = encode_records([{"text": TEXT}, {"prompt": "Q: who?", "completion": " The nurse."}], tok, 64)
    assert enc[0]["input_ids"][0] != tok.bos_token_id and enc[0]["labels"][0] != IGNORE
    nll, cnt = sequence_nll(model, enc, tok.pad_token_id, batch_size=2)
    ids = enc[0]["input_ids"]  # the text's bytes and the EOS
    assert cnt[0] == len(ids) == len(TEXT.encode()) + 1
    assert nll[0] == pytest.approx(-reference(model, model.config.bos_token_id, ids).sum(), rel=1e-5)
    # prompt/completion records are unchanged: only the completion (and EOS) is scored
    n_completion = sum(1 for x in enc[1]["labels"] if x != IGNORE)
    assert cnt[1] == n_completion
    # an explicit prefix (e.g. EOS for a BOS-less tokenizer) is used as given
    nll_eos, cnt_eos = sequence_nll(model, enc[:1], tok.pad_token_id, prefix_id=tok.eos_token_id)
    assert cnt_eos[0] == cnt[0]
    assert nll_eos[0] == pytest.approx(-reference(model, tok.eos_token_id, ids).sum(), rel=1e-5)
    # a sequence that already starts with the prefix token is not given a second one
    with_bos = [{"input_ids": [tok.bos_token_id] + ids, "labels": [tok.bos_token_id] + ids}]
    again, c2 = sequence_nll(model, with_bos, tok.pad_token_id)
    assert c2[0] == cnt[0] and again[0] == pytest.approx(nll[0], rel=1e-5)
