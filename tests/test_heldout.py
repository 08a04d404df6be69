"""The held-out loss (``heldout`` study, ``adapt.tokenize.sequence_nll``) against transformers' own
``labels=`` loss, and its invariance to padding and batching."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lorafair.adapt.tokenize import IGNORE, encode_records, sequence_nll
from lorafair.models.tiny import build_tiny
from lorafair.studies.heldout import HeldoutStudy

RECORDS = [
    {"text": "the cat sat on the mat"},
    {"prompt": "Q: why is the sky blue? A:", "completion": " because of scattering"},
    {"text": "hi"},
    {"prompt": "Translate: dog ->", "completion": " cat"},
    {"text": "a much longer sentence, so that the batch is padded a lot on the right side."},
    {"prompt": "x", "completion": " y z"},
]


def sharp_model(arch):
    """A tiny random model whose next-token distributions are far from uniform (logits scaled up), so a
    loss on the wrong tokens or positions is far from the right one."""
    model, tok = build_tiny(arch, seed=3)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(25.0)
    return model.eval(), tok


def hf_sum_nll(model, ids: list[int], labels: list[int]) -> tuple[float, int]:
    """Σ NLL over the label tokens from transformers' own causal-LM loss (mean over labels ≠ -100)."""
    lab = torch.tensor([labels])
    n = int((lab[:, 1:] != IGNORE).sum())
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=lab).loss
    return float(loss) * n, n


def explicit_encoding(tok, rec):
    """BOS, then the record's tokens; labels on the whole text (text records) or on the completion and
    its EOS only (prompt/completion records): built here without the project's encoder."""
    bos, eos = tok.bos_token_id, tok.eos_token_id
    if "completion" in rec:
        p = tok(rec["prompt"], add_special_tokens=False)["input_ids"]
        c = tok(rec["completion"], add_special_tokens=False)["input_ids"] + [eos]
        return {"input_ids": [bos] + p + c, "labels": [IGNORE] * (1 + len(p)) + c}
    t = tok(rec["text"], add_special_tokens=False)["input_ids"] + [eos]
    return {"input_ids": [bos] + t, "labels": [IGNORE] + t}


@pytest.mark.parametrize("arch", ["llama", "gpt2", "opt"])
def test_sequence_nll_equals_transformers_labels_loss(arch):
    model, tok = sharp_model(arch)
    enc = [explicit_encoding(tok, r) for r in RECORDS]
    nll, cnt = sequence_nll(model, enc, tok.pad_token_id, batch_size=len(enc))  # one padded batch
    per_token = []
    for e, got_nll, got_cnt, rec in zip(enc, nll, cnt, RECORDS):
        want_nll, want_cnt = hf_sum_nll(model, e["input_ids"], e["labels"])
        n_target = len(tok(rec.get("completion", rec.get("text")), add_special_tokens=False)["input_ids"]) + 1
        assert got_cnt == want_cnt == n_target  # prompt tokens (and BOS) not scored; text + EOS all scored
        assert got_nll == pytest.approx(want_nll, rel=1e-5, abs=1e-4), rec
        per_token.append(want_nll / want_cnt)
    assert np.ptp(per_token) > 0.5  # the model is sharp enough for a wrong position to show


@pytest.mark.parametrize("arch", ["llama", "gpt2", "opt"])
def test_sequence_nll_is_padding_invariant(arch):
    model, tok = sharp_model(arch)
    enc = encode_records(RECORDS, tok, 128)
    assert len({len(e["input_ids"]) for e in enc}) == len(enc)  # every batch of several is padded
    batched = sequence_nll(model, enc, tok.pad_token_id, batch_size=len(enc))
    pairs = sequence_nll(model, enc, tok.pad_token_id, batch_size=2)
    single = [sequence_nll(model, [e], tok.pad_token_id, batch_size=1) for e in enc]
    assert batched[1] == pairs[1] == [c for _, (c,) in single]
    np.testing.assert_allclose(batched[0], [n for (n,), _ in single], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(pairs[0], [n for (n,), _ in single], rtol=1e-5, atol=1e-4)
    # a different padding token id changes nothing either (padding is masked, never attended to)
    other_pad = sequence_nll(model, enc, tok.eos_token_id, batch_size=len(enc))
    np.testing.assert_allclose(other_pad[0], batched[0], rtol=1e-5, atol=1e-4)


def _reference(model, tok, rec, max_length=128):
    """The held-out NLL of one record as transformers computes it: text records score the whole text (and
    EOS) — after the model's BOS when the encoded text does not start with it, so its first token is
    scored too; prompt/completion records score the completion (and EOS) only, the prompt masked."""
    (e,) = encode_records([rec], tok, max_length)
    ids = list(e["input_ids"])
    if "completion" in rec:
        n_c = len(tok(rec["completion"], add_special_tokens=False)["input_ids"]) + 1
        return hf_sum_nll(model, ids, [IGNORE] * (len(ids) - n_c) + ids[-n_c:])
    bos = model.config.bos_token_id
    if ids[0] != bos:
        return hf_sum_nll(model, [bos] + ids, [IGNORE] + ids)
    return hf_sum_nll(model, ids, [IGNORE] + ids[1:])


def test_heldout_study_loss_equals_transformers_loss(tmp_path, make_ctx):
    model, tok = sharp_model("llama")
    ref = [_reference(model, tok, r) for r in RECORDS]
    want_loss = sum(n for n, _ in ref) / sum(c for _, c in ref)
    out = {}
    for bs in (1, 4):
        ctx = make_ctx(model=model, tokenizer=tok, config=SimpleNamespace(),
                       study_config=HeldoutStudy.Config(max_length=128, batch_size=bs, n_boot=50), heldout_data=RECORDS)
        out[bs] = HeldoutStudy().evaluate(ctx)
    for res in out.values():
        loss = next(r for r in res.metrics if r.metric == "loss")
        assert loss.value == pytest.approx(want_loss, rel=1e-5)
        items = res.items["sequences"]
        np.testing.assert_allclose(items.columns["nll"], [n for n, _ in ref], rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(items.columns["tokens"], [c for _, c in ref])
    np.testing.assert_allclose(out[1].items["sequences"].columns["nll"], out[4].items["sequences"].columns["nll"], rtol=1e-5)
