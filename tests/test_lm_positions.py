"""Logits at chosen positions (lorafair.lm.positions) and the fairness penalties that use them: the same values
as full logits indexed afterwards, on a real transformers model (boolean ``logits_to_keep``) and on a model
without that argument (the fallback)."""

import torch

from lorafair.adapt.tokenize import collate
from lorafair.lm.positions import logits_at
from lorafair.models.tiny import build_tiny
from lorafair.strategies import StrategyContext, build_strategy


class FullLogitsOnly(torch.nn.Module):
    """The same model without ``logits_to_keep``: forces the fallback (full logits, indexed)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)


def test_logits_at_equals_full_logits_indexed_and_computes_only_the_kept_rows():
    model, _ = build_tiny("llama")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 200, (3, 7), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    keep = torch.zeros_like(ids, dtype=torch.bool)
    keep[0, [1, 6]] = True
    keep[1, 4] = True
    keep[2, [0, 2, 3]] = True
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).logits[keep]
        got = logits_at(model, ids, mask, keep)
        fallback = logits_at(FullLogitsOnly(model), ids, mask, keep)
    assert got.shape == (6, model.config.vocab_size)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(fallback, want)
    calls = []  # the LM head sees the kept rows only (the point of the helper)
    h = model.lm_head.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    with torch.no_grad():
        logits_at(model, ids, mask, keep)
    h.remove()
    assert calls and calls[0][:-1] in ((6,), (1, 6)), calls


def _penalty_pair(name, options, rows):
    model, tok = build_tiny("llama")
    s = build_strategy(name, options)
    obj = s.objective(StrategyContext(seed=0, tokenizer=tok, max_length=48))
    enc = obj.encode(rows, tok, 48)
    batch = collate(enc, tok.pad_token_id) | obj.collate(enc, tok.pad_token_id)
    torch.manual_seed(0)
    with torch.no_grad():  # a non-trivial model: perturb the head so the penalties are not ~0
        model.lm_head.weight.add_(0.05 * torch.randn_like(model.lm_head.weight))
    with torch.no_grad():
        return obj.term(model, batch), obj.term(FullLogitsOnly(model), batch)


def test_cfreg_term_with_kept_positions_equals_the_full_logits_computation():
    rows = [{"text": "He said the doctor went home early."}, {"text": "She is a nurse at the hospital."},
            {"text": "Nothing to swap in this one."}, {"text": "His brother and her sister came."}]
    fast, full = _penalty_pair("cfreg", {"lam": 1.0, "axes": ["gender"]}, rows)
    assert float(full) > 0
    torch.testing.assert_close(fast, full, rtol=1e-4, atol=1e-7)


def test_group_penalty_with_kept_positions_equals_the_full_logits_computation():
    rows = [{"prompt": f"Record {i}. Approve?", "completion": " yes" if i % 2 else " no", "group": "ab"[i % 3 == 0]}
            for i in range(8)]
    fast, full = _penalty_pair("dpreg", {"lam": 1.0}, rows)
    assert float(full) > 0
    torch.testing.assert_close(fast, full, rtol=1e-4, atol=1e-8)
