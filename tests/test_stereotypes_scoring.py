"""The batched continuation scorer against a one-by-one computation on tiny:llama."""

import numpy as np
import pytest
import torch

from lorafair.models.tiny import build_tiny
from lorafair.studies.stereotypes.scoring import encode_pair, score_continuations


@pytest.fixture(scope="module")
def tiny():
    return build_tiny("llama")


def manual(model, tok, context, continuation):
    ctx, cont = encode_pair(tok, context, continuation)
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    first = max(len(ctx), 1)
    return np.array([lp[i - 1, ids[0, i]].item() for i in range(first, ids.shape[1])])


REQS = [
    ("The nurse said", " she was tired."),
    ("", "A short one."),
    ("A much longer context sentence that needs padding in the batch. ", "Yes"),
    ("Q: who?\nAnswer:", " The grandfather"),
    ("x", " y"),
]


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_batched_equals_one_by_one(tiny, batch_size):
    model, tok = tiny
    got = score_continuations(model, tok, REQS, batch_size=batch_size)
    for (c, x), s in zip(REQS, got):
        ref = manual(model, tok, c, x)
        assert s.n_tokens == len(ref) == len(encode_pair(tok, c, x)[1])
        np.testing.assert_allclose(s.token_logprobs, ref, rtol=1e-5, atol=1e-5)
        assert s.total == pytest.approx(ref.sum(), abs=1e-4)
        assert s.mean == pytest.approx(ref.mean(), abs=1e-5)


def test_encode_pair_bos_and_trailing_space(tiny):
    _, tok = tiny
    ctx, cont = encode_pair(tok, "ab ", "c")
    assert ctx[0] == tok.bos_token_id and len(ctx) == 3  # BOS, a, b
    assert tok.decode(cont) == " c"  # the trailing space moved to the continuation
    ctx, cont = encode_pair(tok, "", "hi")
    assert ctx == [tok.bos_token_id] and len(cont) == 2


class NoSpecials:
    """The byte tokenizer seen as one with neither BOS nor EOS (nothing to condition the first token on)."""

    def __init__(self, tok):
        self._tok, self.bos_token_id, self.eos_token_id, self.pad_token_id = tok, None, None, tok.pad_token_id

    def __call__(self, *a, **k):
        return self._tok(*a, **k)


def test_empty_context_without_bos_or_eos_skips_first_token(tiny):
    model, tok = tiny
    s = score_continuations(model, NoSpecials(tok), [("", "hello")])[0]
    assert s.n_tokens == 4  # "hello" is 5 byte tokens; the first has no left context
    ids = torch.tensor([tok("hello", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    assert s.total == pytest.approx(sum(lp[i - 1, ids[0, i]].item() for i in range(1, 5)), abs=1e-4)


def test_left_truncation_to_max_positions(tiny):
    model, tok = tiny
    n = model.config.max_position_embeddings
    s = score_continuations(model, tok, [("z" * (n + 10), " end")])[0]
    assert s.n_tokens == 4 and np.isfinite(s.total)


def test_bad_batch_size(tiny):
    with pytest.raises(ValueError):
        score_continuations(*tiny, REQS, batch_size=0)
