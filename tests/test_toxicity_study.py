"""The toxicity study end to end on tiny:llama with a fake scorer; generation determinism; perplexity."""

import json
import math

import pytest
import torch

from lorafair.models.tiny import build_tiny
from lorafair.studies.base import STUDIES, VariantInfo
from lorafair.studies.toxicity.generation import sample_continuations, text_nll, perplexity

from helpers_lf import eval_context, hash_scorer

FAKE = "test-fake-hash"


hash_scorer(FAKE)


@pytest.fixture(scope="module")
def tiny():
    return build_tiny("llama")


def _ctx(tmp_path, model, tok, cfg, variant="base", method="base", **kw):
    return eval_context(model=model, tokenizer=tok, variant=VariantInfo(variant, method, None), out_dir=tmp_path / f"{variant}-s0",
                        study_config=cfg, **kw)


def _cfg(**over):
    import lorafair.studies.toxicity  # noqa: F401  (registers the study)

    fields = dict(
        prompts={"source": "honest", "options": {"axis": "race", "split": "eval"}, "limit": 6},
        scorer=FAKE, k=3, max_new_tokens=4, batch_size=8, n_boot=200,
        perplexity_data={"source": "bold-wiki", "options": {"split": "eval"}, "limit": 4},
    )
    fields.update(over)
    return STUDIES.get("toxicity").Config.model_validate(fields)


def _samples(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_sampling_is_seeded_and_keeps_caller_rng(tiny):
    model, tok = tiny
    before = torch.random.get_rng_state()
    kw = dict(k=3, max_new_tokens=5, temperature=1.0, top_p=0.9, batch_size=4)
    a = sample_continuations(model, tok, ["Hello there", "The Black woman worked as a"], seed=1, **kw)
    b = sample_continuations(model, tok, ["Hello there", "The Black woman worked as a"], seed=1, **kw)
    c = sample_continuations(model, tok, ["Hello there", "The Black woman worked as a"], seed=2, **kw)
    assert torch.equal(before, torch.random.get_rng_state())
    assert a == b and a != c
    assert [len(x) for x in a] == [3, 3]
    assert tok.padding_side == "right"  # restored


def test_left_padding_gives_same_text_as_alone_with_greedy_like_sampling(tiny):
    # top_p tiny -> argmax: a short prompt batched with a long one must continue as when alone.
    model, tok = tiny
    kw = dict(k=1, max_new_tokens=6, temperature=1.0, top_p=1e-6, seed=0)
    alone = sample_continuations(model, tok, ["Hi"], batch_size=1, **kw)
    batched = sample_continuations(model, tok, ["Hi", "A much longer prompt than that"], batch_size=2, **kw)
    assert batched[0] == alone[0]


def test_perplexity_matches_model_loss(tiny):
    model, tok = tiny
    text = "The quick brown fox jumps."
    (nll, n), = text_nll(model, tok, [text])
    from lorafair.studies.stereotypes.scoring import prefix_token_id

    enc = tok(text, return_tensors="pt")
    ids = enc["input_ids"]
    prefix = prefix_token_id(tok)
    if prefix is not None and ids[0, 0].item() != prefix:  # every token of the text is scored, after the prefix token
        ids = torch.cat([torch.tensor([[prefix]]), ids], dim=1)
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert n == ids.shape[1] - 1 == len(tok(text, add_special_tokens=False)["input_ids"])
    assert nll / n == pytest.approx(loss, rel=1e-5)
    # padding does not change a text's value
    (nll2, n2), _ = text_nll(model, tok, [text, text + " And a longer second text here."])
    assert (nll2, n2) == pytest.approx((nll, n), rel=1e-5)
    assert perplexity([(nll, n)]) == pytest.approx(math.exp(loss), rel=1e-5)


def test_study_end_to_end_deterministic_and_compares_to_base(tmp_path, tiny):
    model, tok = tiny
    cls = STUDIES.get("toxicity")
    cfg = _cfg()
    r1 = cls().evaluate(_ctx(tmp_path, model, tok, cfg))
    s1 = _samples(tmp_path / "base-s0" / "samples.jsonl")
    r2 = cls().evaluate(_ctx(tmp_path, model, tok, cfg))
    s2 = _samples(tmp_path / "base-s0" / "samples.jsonl")
    assert s1 == s2 and len(s1) == 6 * 3
    assert [(m.metric, m.group, m.value) for m in r1.metrics] == [(m.metric, m.group, m.value) for m in r2.metrics]
    assert set(s1[0]) == {"prompt_id", "prompt", "group", "sample", "text", "toxicity", "scores"}
    assert s1[0]["scores"]["insult"] == pytest.approx(s1[0]["toxicity"] / 2)

    # EMT recomputed from samples.jsonl
    by = {}
    for s in s1:
        by.setdefault(s["prompt_id"], []).append(s["toxicity"])
    emt = sum(max(v) for v in by.values()) / len(by)
    metrics = {(m.metric, m.group): m for m in r1.metrics}
    assert metrics[("emt", "")].value == pytest.approx(emt)
    assert ("emt_gap", "") in metrics and ("perplexity", "") in metrics
    assert ("toxicity_rose", "") not in metrics  # not for the base variant
    assert r1.info["k"] == 3 and r1.info["n_prompts"] == 6 and r1.info["top_p"] == 0.9
    assert r1.info["scorer"]["name"] == FAKE and r1.info["tokens_per_second"] > 0
    assert math.isfinite(metrics[("perplexity", "")].value) and metrics[("perplexity", "")].n == 4

    # a "variant" with the same weights: base samples read from the file; nothing rose.
    r3 = cls().evaluate(_ctx(tmp_path, model, tok, cfg, variant="lora-r1", method="lora"))
    m3 = {(m.metric, m.group): m for m in r3.metrics}
    assert r3.info["base_comparison"].startswith("file base-s0")
    assert m3[("toxicity_rose", "")].value == 0.0


def test_rose_falls_back_to_reference_and_is_skipped_without_one(tmp_path, tiny):
    model, tok = tiny
    cls = STUDIES.get("toxicity")
    cfg = _cfg(perplexity_data=None)
    # no base samples file and no model: left out
    r = cls().evaluate(_ctx(tmp_path, model, tok, cfg, variant="full", method="full"))
    assert not [m for m in r.metrics if m.metric == "toxicity_rose"]
    assert "no matching" in r.info["base_comparison"]
    # a reference model: re-sampled, same weights -> 0
    r = cls().evaluate(_ctx(tmp_path, model, tok, cfg, variant="full", method="full", reference=lambda name: model))
    (rose,) = [m for m in r.metrics if m.metric == "toxicity_rose" and m.group == ""]
    assert rose.value == 0.0 and r.info["base_comparison"] == "re-sampled from the base model"


def test_config_rejects_bad_values():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        _cfg(k=0)
    with pytest.raises(ValidationError):
        _cfg(top_p=1.5)
    with pytest.raises(ValidationError):
        _cfg(unknown_field=1)


def test_unknown_prompt_source_is_a_user_error(tmp_path, tiny):
    from lorafair.errors import UserError

    model, tok = tiny
    cfg = _cfg(prompts={"source": "no-such-dataset"})
    with pytest.raises(UserError, match="no-such-dataset"):
        STUDIES.get("toxicity")().evaluate(_ctx(tmp_path, model, tok, cfg))
