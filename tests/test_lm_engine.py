"""The LM engine (``lorafair.lm``) against hand-computed references on tiny:llama.

Every reference here is one unpadded, unbatched forward pass over one sequence, built without the
engine's tokenisation helpers (the byte tokenizer maps a character to one token), and the log-probability
read by hand: so padding, batching, length sorting, position bookkeeping and the prefix token are all
checked. The model is made "sharp" (output embeddings scaled up) so that reading a wrong position or a
wrong token is far from the right value.
"""

import ast
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from lorafair.lm import IGNORE, LM, batches, encode_pair, pad, position_batches, position_ids, sample_seed
from lorafair.models.tiny import build_tiny

TEXTS = ["The nurse was tired.", "hi", "A much longer sentence, so that the batch is padded a lot on one side.", "x y"]
PROMPTS = ["Q: is it?\nAnswer:", "x", "The applicant has a long credit history and stable income.\nDecision:", "Hi there"]


@pytest.fixture(scope="module")
def plain():
    """tiny:llama as built (not sharpened): its samples vary with the seed."""
    return build_tiny("llama")


@pytest.fixture(scope="module")
def tiny():
    model, tok = build_tiny("llama", seed=3)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(25.0)
    return model.eval(), tok


def _byte_chars() -> dict[int, str]:
    """GPT-2's byte -> printable character map (the byte-level pre-tokenizer's alphabet)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for x in range(256):
        if x in keep:
            chars[x] = chr(x)
        else:
            chars[x] = chr(256 + n)
            n += 1
    return chars


def b(text: str) -> list[int]:
    """The byte tokenizer's ids of ``text``, computed without the tokenizer: 3 specials, then one token per
    byte, numbered in the sorted order of the byte-level alphabet."""
    chars = _byte_chars()
    alphabet = sorted(chars.values())
    return [3 + alphabet.index(chars[x]) for x in text.encode()]


def ref_logp(model, ids: list[int]) -> torch.Tensor:
    """log_softmax of the logits of one unpadded sequence (positions × vocabulary), float64."""
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), dim=-1)


def ref_scores(model, ids: list[int], first: int) -> np.ndarray:
    """log P(ids[t] | ids[:t]) for t = first … len(ids)-1, one sequence."""
    lp = ref_logp(model, ids)
    return np.array([float(lp[t - 1, ids[t]]) for t in range(first, len(ids))])


def test_byte_ids_helper_matches_tokenizer(tiny):
    _, tok = tiny
    assert b("Hi, ünïcode!") == tok("Hi, ünïcode!", add_special_tokens=False)["input_ids"]
    assert tok("abc")["input_ids"] == b("abc")  # the byte tokenizer adds no BOS by itself (as SmolLM2's)


# ---- batching --------------------------------------------------------------------------------------


def test_pad_sides_and_position_ids():
    ids, mask = pad([[5, 6, 7], [8]], 0, "right")
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    ids, mask = pad([[5, 6, 7], [8]], 0, "left")
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert position_ids(mask).tolist() == [[0, 1, 2], [0, 0, 0]]
    ids, mask = pad([[], [1]], -100, "right", width=3)
    assert ids.tolist() == [[-100] * 3, [1, -100, -100]] and mask.sum() == 1
    with pytest.raises(ValueError, match="side"):
        pad([[1]], 0, "middle")


def test_batches_orders_are_stable():
    lengths = [3, 1, 3, 2, 1]
    assert batches(lengths, 2, "given") == [[0, 1], [2, 3], [4]]
    assert batches(lengths, 2, "ascending") == [[1, 4], [3, 0], [2]]
    assert batches(lengths, 2, "descending") == [[0, 2], [3, 1], [4]]
    with pytest.raises(ValueError, match="batch_size"):
        batches(lengths, 0)
    with pytest.raises(ValueError, match="order"):
        batches(lengths, 2, "random")


# ---- loglikelihood ---------------------------------------------------------------------------------

REQS = [("The nurse said", " she was tired."), ("", "A short one."), ("ab ", "c"), ("x", " y"),
        ("A much longer context sentence that needs padding in the batch.", " Yes")]


@pytest.mark.parametrize("batch_size", [1, 2, len(REQS)])
def test_loglikelihood_is_sum_of_log_softmax_at_continuation_positions(tiny, batch_size):
    model, tok = tiny
    got = LM(model, tok, batch_size=batch_size).loglikelihood(REQS)
    for (context, continuation), s in zip(REQS, got):
        n_space = len(context) - len(context.rstrip())  # trailing space moves to the continuation
        ctx = [tok.bos_token_id] + b(context.rstrip())
        cont = b(context[len(context) - n_space:] + continuation)
        ref = ref_scores(model, ctx + cont, len(ctx))
        assert s.token_ids == cont and s.n_tokens == len(cont)
        np.testing.assert_allclose(s.token_logprobs, ref, rtol=1e-5, atol=1e-5)
        assert s.total == pytest.approx(ref.sum(), abs=1e-4)
        lp = ref_logp(model, ctx + cont)
        greedy = all(int(lp[t - 1].argmax()) == (ctx + cont)[t] for t in range(len(ctx), len(ctx + cont)))
        assert s.greedy == greedy
    assert np.ptp([s.mean for s in got]) > 0.5  # the model is sharp: a wrong position would show


def test_loglikelihood_greedy_flag_true_for_the_models_own_continuation(tiny):
    model, tok = tiny
    ctx = [tok.bos_token_id] + b("Hello")
    seq = list(ctx)
    for _ in range(4):
        seq.append(int(ref_logp(model, seq)[-1].argmax()))
    cont_text = tok.decode(seq[len(ctx):])
    if b(cont_text) != seq[len(ctx):]:
        pytest.skip("greedy tokens are not a byte string")
    (s,) = LM(model, tok).loglikelihood([("Hello", cont_text)])
    assert s.greedy is True


# ---- rolling NLL and sequence NLL ------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 3])
def test_rolling_nll_scores_every_token_after_the_prefix(tiny, batch_size):
    model, tok = tiny
    got = LM(model, tok, batch_size=batch_size).rolling_nll(TEXTS, max_length=128)
    for text, (nll, n) in zip(TEXTS, got):
        ids = [tok.bos_token_id] + b(text)
        assert n == len(b(text)) == len(text)  # the first character is predicted too
        assert nll == pytest.approx(-ref_scores(model, ids, 1).sum(), rel=1e-5, abs=1e-4)
    (nll6, n6), = LM(model, tok).rolling_nll([TEXTS[0]], max_length=6)  # the prefix token counts in max_length
    assert n6 == 5 and nll6 == pytest.approx(-ref_scores(model, [tok.bos_token_id] + b(TEXTS[0])[:5], 1).sum(), rel=1e-5)


def _records(tok):
    bos, eos = tok.bos_token_id, tok.eos_token_id
    p, c = b("Q: who?"), b(" The nurse.") + [eos]
    return [
        {"input_ids": b(TEXTS[0]) + [eos], "labels": b(TEXTS[0]) + [eos]},  # a text without BOS
        {"input_ids": [bos] + p + c, "labels": [IGNORE] * (1 + len(p)) + c},  # prompt/completion
        {"input_ids": b(TEXTS[2]), "labels": b(TEXTS[2])},
    ]


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_sequence_nll_of_encoded_records(tiny, batch_size):
    model, tok = tiny
    enc = _records(tok)
    nll, cnt = LM(model, tok, batch_size=batch_size).sequence_nll(enc)
    bos = model.config.bos_token_id
    want = [-ref_scores(model, [bos] + enc[0]["input_ids"], 1).sum(),
            -ref_scores(model, enc[1]["input_ids"], 1 + len(b("Q: who?"))).sum(),
            -ref_scores(model, [bos] + enc[2]["input_ids"], 1).sum()]
    assert cnt == [len(enc[0]["input_ids"]), len(b(" The nurse.")) + 1, len(enc[2]["input_ids"])]
    np.testing.assert_allclose(nll, want, rtol=1e-5, atol=1e-4)
    # without a prefix token the first token of a text has nothing to be predicted from
    nll0, cnt0 = LM(model, tok).sequence_nll(enc[:1], prefix=None)
    assert cnt0 == [len(enc[0]["input_ids"]) - 1]
    assert nll0[0] == pytest.approx(-ref_scores(model, enc[0]["input_ids"], 1).sum(), rel=1e-5)
    assert LM(model, tok).sequence_nll([]) == ([], [])


# ---- answers ---------------------------------------------------------------------------------------


def teacher_forced(model, tok, prompt: str, answer: str) -> float:
    p, a = tok(prompt)["input_ids"], b(answer)
    lp = ref_logp(model, p + a)
    return float(sum(lp[len(p) - 1 + j, t] for j, t in enumerate(a)))


@pytest.mark.parametrize("padding,order", [("left", "ascending"), ("right", "given")])
@pytest.mark.parametrize("answers", [("y", "n"), (" yes", " no")])  # single-token and multi-token paths
def test_answer_logprobs_equal_teacher_forcing(tiny, padding, order, answers):
    model, tok = tiny
    ref = np.array([[teacher_forced(model, tok, p, a) for a in answers] for p in PROMPTS])
    for bs in (1, 3, len(PROMPTS)):
        lm = LM(model, tok, batch_size=bs)
        got = lm.answer_logprobs(PROMPTS, answers, padding=padding, order=order)
        assert got.shape == (len(PROMPTS), 2) and got.dtype == np.float64
        np.testing.assert_allclose(got, ref, atol=1e-4)
        assert lm.logits_to_keep_ok  # the model accepted logits_to_keep
    assert np.ptp(ref) > 1.0


@pytest.mark.parametrize("arch", ["gpt2", "opt"])  # absolute position embeddings: left padding needs position ids
def test_left_padding_with_absolute_positions(arch):
    model, tok = build_tiny(arch, seed=3)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(25.0)
    for answers in [("y", "n"), (" yes", " no")]:
        ref = np.array([[teacher_forced(model, tok, p, a) for a in answers] for p in PROMPTS])
        got = LM(model, tok, batch_size=len(PROMPTS)).answer_logprobs(PROMPTS, answers, padding="left")
        np.testing.assert_allclose(got, ref, atol=1e-4)


def test_single_token_path_agrees_with_teacher_forcing_path(tiny):
    model, tok = tiny
    single = LM(model, tok).answer_logprobs(PROMPTS, ("y", "n"))  # both one token: next-token path
    forced = LM(model, tok).answer_logprobs(PROMPTS, ("y", "no"))  # "no" is two tokens: teacher forcing for both
    np.testing.assert_allclose(forced[:, 0], single[:, 0], atol=1e-5)


def test_answer_padding_sides_agree_to_float_rounding(tiny):
    model, tok = tiny
    lm = LM(model, tok, batch_size=4)
    left = lm.answer_logprobs(PROMPTS, (" yes", " no"), padding="left", order="ascending")
    right = lm.answer_logprobs(PROMPTS, (" yes", " no"), padding="right", order="given")
    np.testing.assert_allclose(left, right, atol=1e-4)


def test_answer_that_tokenizes_to_nothing(tiny):
    with pytest.raises(ValueError, match="tokenizes to nothing"):
        LM(*tiny).answer_logprobs(PROMPTS, ("", "n"))


class RejectsKeep(torch.nn.Module):
    """A causal LM whose forward has no ``logits_to_keep`` argument (TypeError)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask, position_ids=None, use_cache=False):
        return self.m(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache)


class IgnoresKeep(RejectsKeep):
    """A causal LM that accepts and silently ignores ``logits_to_keep`` (returns every position)."""

    def forward(self, input_ids, attention_mask, position_ids=None, use_cache=False, **kwargs):
        return super().forward(input_ids, attention_mask, position_ids, use_cache)


@pytest.mark.parametrize("wrapper", [RejectsKeep, IgnoresKeep])
@pytest.mark.parametrize("answers", [("y", "n"), (" yes", " no")])
@pytest.mark.parametrize("padding", ["left", "right"])
def test_models_without_logits_to_keep_give_the_same_numbers(tiny, wrapper, answers, padding):
    model, tok = tiny
    want = LM(model, tok, batch_size=3).answer_logprobs(PROMPTS, answers, padding=padding)
    lm = LM(wrapper(model), tok, batch_size=3)
    got = lm.answer_logprobs(PROMPTS, answers, padding=padding)
    tried = padding == "left" or len(answers[0]) == 1  # right-padded teacher forcing uses every position anyway
    assert lm.logits_to_keep_ok is not tried
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)  # the LM head over more rows: float rounding only


class RecordsKeep(RejectsKeep):
    """Passes everything through and records each call's ``logits_to_keep``."""

    def __init__(self, m):
        super().__init__(m)
        self.calls = []

    def forward(self, input_ids, attention_mask, position_ids=None, use_cache=False, **kwargs):
        self.calls.append((input_ids.shape[1], kwargs.get("logits_to_keep")))
        return self.m(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=use_cache,
                      **kwargs)


def test_lm_head_rows_are_the_studies_own(tiny):
    """Which positions go through the LM head changes logits by float rounding (measured 2e-5 nats on
    SmolLM2-135M): the engine keeps what each study did before it existed, except the held-out and forgetting
    losses, which moved to the scored positions (the same losses to the last digit on Gemma 3 270M, COMPAS)."""
    model, tok = tiny
    rec = RecordsKeep(model)
    lm = LM(rec, tok, batch_size=len(PROMPTS))
    lengths = [len(tok(p)["input_ids"]) for p in PROMPTS]
    lm.answer_logprobs(PROMPTS, ("y", "n"), padding="left")  # classification, single token: the last position
    assert rec.calls == [(max(lengths), 1)]
    rec.calls.clear()
    lm.answer_logprobs(PROMPTS, (" yes", " no"), padding="left")  # classification, teacher forcing: last len(a)+1
    assert [k for _, k in rec.calls] == [len(" yes") + 1, len(" no") + 1]
    rec.calls.clear()
    lm.answer_logprobs(PROMPTS, ("y", "n"), padding="right")  # decisions, single token: the distinct last positions
    ((_, keep),) = rec.calls
    assert keep.tolist() == sorted({n - 1 for n in lengths})
    rec.calls.clear()
    lm.answer_logprobs(PROMPTS, (" yes", " no"), padding="right")  # decisions, teacher forcing: every position
    assert [k for _, k in rec.calls] == [None, None]
    rec.calls.clear()
    enc = _records(tok)[1:2]  # a prompt/completion record: the head runs at its completion's positions only
    nll, _ = lm.sequence_nll(enc)
    ((width, keep),) = rec.calls
    first = enc[0]["labels"].index(next(t for t in enc[0]["labels"] if t != IGNORE))
    assert keep.tolist() == list(range(first - 1, width - 1))
    assert nll[0] == pytest.approx(-ref_scores(model, enc[0]["input_ids"], first).sum(), rel=1e-5)


# ---- full distributions ----------------------------------------------------------------------------


def test_distributions_at_scored_positions(tiny):
    model, tok = tiny
    seqs = [(0, [tok.bos_token_id] + b(TEXTS[0]), 1), (1, [tok.bos_token_id] + b("Q: x? A: yes"), 1 + len(b("Q: x? A:"))),
            (2, [tok.bos_token_id] + b(TEXTS[2]), 1)]
    lm = LM(model, tok, batch_size=2)
    got = []
    for batch in lm.position_batches(seqs):
        logp, idx, out = lm.distributions(batch, dtype=torch.float64, hidden=True)
        assert logp.dtype == torch.float64 and len(out.hidden_states) == model.config.num_hidden_layers + 1
        assert logp.shape[0] == int(batch.score_mask.sum()) == idx.numel()
        got.append(logp)
    got = torch.cat(got)
    want = torch.cat([ref_logp(model, ids)[first - 1 : len(ids) - 1] for _, ids, first in seqs])
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    pb = position_batches(seqs, tok.pad_token_id, 8)[0]
    assert pb.index == [0, 1, 2] and pb.score_mask[1].sum() == len(b(" yes"))


# ---- generation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [2, 6, 64])
def test_sampling_is_seeded_and_per_prompt(plain, batch_size):
    model, tok = plain
    kw = dict(k=3, max_new_tokens=6, temperature=1.0, top_p=0.9)
    lm = LM(model, tok, batch_size=batch_size)
    before = torch.random.get_rng_state()
    a = lm.sample(PROMPTS, seed=1, **kw)
    assert torch.equal(before, torch.random.get_rng_state())  # the caller's RNG is untouched
    assert a == lm.sample(PROMPTS, seed=1, **kw) != lm.sample(PROMPTS, seed=2, **kw)
    assert [len(x) for x in a] == [3] * len(PROMPTS) and len({t for x in a for t in x}) > len(PROMPTS)
    assert lm.sample(PROMPTS, seed=1, stream="other", **kw) != a  # streams are separate
    assert sample_seed(1, 0, "eval") == int(hashlib.sha256(b"toxicity-sample:eval:1:0").hexdigest()[:15], 16)
    assert tok.padding_side == "right"


@pytest.mark.parametrize("arch", ["llama", "gpt2", "opt", "llama+lora"])
def test_sampling_encodes_each_prompt_once_and_draws_what_repeated_prompts_draw(arch, monkeypatch):
    """k samples of a prompt: the prompt goes through the model once (its KV cache repeated k times), and the
    samples are those of the prompt repeated k times in the batch (the same cache, the same random numbers)."""
    model, tok = build_tiny(arch.split("+")[0])
    if arch.endswith("+lora"):
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, init_lora_weights=False))
    kw = dict(k=3, max_new_tokens=6, temperature=1.0, top_p=0.9, seed=4)
    rows = []
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    hook = inner.register_forward_pre_hook(lambda m, a, k: rows.append(k["input_ids"].shape), with_kwargs=True)
    lm = LM(model, tok, batch_size=6)  # two prompts (six sequences) per generate call
    shared = lm.sample(PROMPTS, **kw)
    hook.remove()
    # per call: the two distinct prompts (all tokens but the last) once, then every step at 2 x 3 rows
    assert rows[0][0] == 2 and all(r[0] == 6 for r in rows[1:7])
    monkeypatch.setattr(LM, "_shared_prompt_cache", lambda self, *a: None)
    assert shared == lm.sample(PROMPTS, **kw)


def test_sampling_with_a_one_token_nucleus_is_greedy_decoding(plain):
    # top_p tiny: the nucleus is the most probable token, so every sample is the greedy continuation
    model, tok = plain
    lm = LM(model, tok, batch_size=4)
    greedy = lm.generate(PROMPTS, max_new_tokens=5)
    samples = lm.sample(PROMPTS, k=2, max_new_tokens=5, temperature=1.3, top_p=1e-9, seed=3)
    assert samples == [[g, g] for g in greedy]


def test_greedy_generate_equals_unbatched_generation(plain):
    model, tok = plain
    got = LM(model, tok, batch_size=3).generate(PROMPTS, max_new_tokens=5)
    for p, g in zip(PROMPTS, got):
        with torch.no_grad():
            ids = torch.tensor([tok(p)["input_ids"]])
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        assert g == tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_bad_sampling_arguments(tiny):
    from lorafair.errors import UserError

    lm = LM(*tiny)
    with pytest.raises(ValueError, match="positive"):
        lm.sample(PROMPTS, k=0, max_new_tokens=3, temperature=1.0, top_p=0.9, seed=0)
    with pytest.raises(UserError, match="prompt #1 is empty"):
        lm.sample(["a", " "], k=1, max_new_tokens=3, temperature=1.0, top_p=0.9, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        LM(*tiny, batch_size=0)


# ---- housekeeping ----------------------------------------------------------------------------------


def test_scoring_runs_in_eval_mode_and_restores_training_mode(tiny):
    model, tok = tiny
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    try:
        model.train()
        LM(model, tok).rolling_nll(TEXTS[:1], max_length=32)
        LM(model, tok).answer_logprobs(PROMPTS[:1], ("y", "n"))
        assert model.training
    finally:
        hook.remove()
        model.eval()
    assert seen == [False, False]


def test_encode_pair_matches_bytes(tiny):
    _, tok = tiny
    assert encode_pair(tok, "ab ", "c") == ([tok.bos_token_id] + b("ab"), b(" c"))


def test_engine_imports_nothing_from_studies_data_or_adapt():
    root = Path(__file__).resolve().parents[1] / "src" / "lorafair" / "lm"
    imported = set()
    for f in root.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
    ours = {m for m in imported if m.split(".")[0] == "lorafair"}
    assert ours and all(m == "lorafair.errors" or m == "lorafair.lm" or m.startswith("lorafair.lm.") for m in ours), ours


def test_sampling_falls_back_to_repeated_prompts_when_the_cache_cannot_be_shared(plain, monkeypatch):
    """A model whose cache cannot be repeated samples as before (prompts repeated); running out of memory is not
    hidden."""
    from transformers import DynamicCache

    model, tok = plain
    kw = dict(k=2, max_new_tokens=4, temperature=1.0, top_p=0.9, seed=5)
    lm = LM(model, tok, batch_size=4)
    want = lm.sample(PROMPTS, **kw)

    def broken(self, repeats):
        raise RuntimeError("cannot repeat this cache")

    monkeypatch.setattr(DynamicCache, "batch_repeat_interleave", broken)
    calls = []
    real = LM._shared_prompt_cache
    monkeypatch.setattr(LM, "_shared_prompt_cache", lambda self, *a: calls.append(1) or real(self, *a))
    assert lm.sample(PROMPTS, **kw) == want and calls  # tried, fell back, the same draws

    def oom(self, repeats):
        raise torch.OutOfMemoryError("out of memory")

    monkeypatch.setattr(DynamicCache, "batch_repeat_interleave", oom)
    with pytest.raises(torch.OutOfMemoryError):
        lm.sample(PROMPTS, **kw)


def test_common_random_numbers_couple_nearly_equal_models(plain):
    """Two models that barely differ sample the same texts from the same seed (lm.nucleus's race keyed by token id):
    weights moved by 0.2% of their spread leave every text of 64 unchanged here, where the earlier inverse-CDF draw
    over the sorted nucleus kept 14% of them; another seed shares none."""
    import copy

    model, tok = plain
    model.eval()
    moved = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.002 * p.std())
    prompts = [f"prompt number {i} says" for i in range(16)]
    kw = dict(k=4, max_new_tokens=8, temperature=1.0, top_p=0.9, seed=0)
    a = LM(model, tok, batch_size=64).sample(prompts, **kw)
    b = LM(moved, tok, batch_size=64).sample(prompts, **kw)
    c = LM(model, tok, batch_size=64).sample(prompts, **{**kw, "seed": 1})
    same = lambda x, y: np.mean([u == v for xs, ys in zip(x, y) for u, v in zip(xs, ys)])  # noqa: E731
    assert same(a, b) >= 0.9
    assert same(a, c) <= 0.1
