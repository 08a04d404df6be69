"""The training-speed levers of the performance issue keep the numbers: logits and loss at supervised
positions only equal the full-logits loss (fp32, 1e-5); length-grouped batches are seeded, deterministic,
cover every record once per epoch and pad less; bf16 autocast follows the fp32 loss curve on tiny:llama;
``precision: auto`` picks bf16 on a CPU only where bf16 is native, and train.json says which was used."""

import math

import pytest
import torch

from lorafair.adapt import train as T
from lorafair.adapt.tokenize import IGNORE, collate, encode_records
from lorafair.adapt.variants import Variant
from lorafair.config.schema import TrainConfig
from lorafair.models.sources import load_model


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_model("tiny:llama")
    model.requires_grad_(False)
    return model, tok


def records(n=40):
    rows = []
    for i in range(n):
        if i % 2:
            rows.append({"prompt": "q" * (1 + i % 7) + " ", "completion": "answer " * (1 + i % 5)})
        else:
            rows.append({"text": "some text " * (1 + i % 9)})
    return rows


def test_supervised_loss_equals_full_logits_loss(tiny):
    model, tok = tiny
    enc = encode_records(records(), tok, 64)
    for start in (0, 8, 16):
        batch = collate(enc[start:start + 8], tok.pad_token_id)
        full = T.full_loss(model, batch)
        sup = T.supervised_loss(model, batch)
        assert abs(float(sup) - float(full)) < 1e-5
    # gradients too (the same function of the parameters)
    m = T.build_variant_model(model, Variant("full", "full", lrs=(1e-3,)), 0)
    batch = collate(enc[:8], tok.pad_token_id)
    T.full_loss(m, batch).backward()
    g_full = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    T.supervised_loss(m, batch).backward()
    for a, p in zip(g_full, m.parameters()):
        torch.testing.assert_close(p.grad, a, atol=1e-5, rtol=1e-4)


def test_length_grouped_batches_are_seeded_and_cover_every_record():
    lengths = [(i * 37) % 50 + 1 for i in range(203)]
    s = T.LengthGroupedBatches(lengths, 8, seed=3)
    a, b = s.batches(0), T.LengthGroupedBatches(lengths, 8, seed=3).batches(0)
    assert a == b and a != s.batches(1) and a != T.LengthGroupedBatches(lengths, 8, seed=4).batches(0)
    assert sorted(i for x in a for i in x) == list(range(203)) and len(a) == len(s) == 26

    def padded(batches):
        return sum(len(x) * max(lengths[i] for i in x) for x in batches)

    g = torch.Generator().manual_seed(3)
    perm = torch.randperm(203, generator=g).tolist()
    plain = [perm[k:k + 8] for k in range(0, 203, 8)]
    assert padded(a) < 0.8 * padded(plain)
    # iterating without set_epoch walks epochs 0, 1, …; set_epoch (accelerate) picks one
    assert list(iter(s)) == a and list(iter(s)) == s.batches(1)
    s.set_epoch(0)
    assert list(iter(s)) == a


def test_old_batch_order_is_kept_without_grouping(tiny):
    _, tok = tiny
    enc = encode_records(records(), tok, 64)
    old = T.train_loader(enc, TrainConfig(group_by_length=False, batch_size=8), 0, tok.pad_token_id)
    gen = torch.Generator().manual_seed(0)
    ref = torch.utils.data.DataLoader(enc, batch_size=8, shuffle=True, generator=gen,
                                      collate_fn=lambda b: collate(b, tok.pad_token_id))
    for x, y in zip(old, ref):
        assert torch.equal(x["input_ids"], y["input_ids"])


def _train(tiny, precision, **kw):
    model, tok = tiny
    enc = encode_records(records(), tok, 64)
    tcfg = TrainConfig(max_steps=6, batch_size=8, precision=precision, checkpoint_every=None, warmup_ratio=0.0, **kw)
    m = T.build_variant_model(model, Variant("full", "full", lrs=(1e-3,)), 0)
    return T.train_model(m, tok, enc, enc[:8], tcfg, 1e-3, 0, torch.device("cpu"), progress=False)


def test_bf16_loss_curve_follows_fp32(tiny):
    """bf16 autocast with fp32 master weights: every step's loss within 2% (relative) of fp32's on tiny:llama."""
    r32, r16 = _train(tiny, "fp32"), _train(tiny, "bf16")
    assert r32.precision == "fp32" and r16.precision == "bf16"
    for a, b in zip(r32.history, r16.history):
        assert abs(a["loss"] - b["loss"]) <= 0.02 * abs(a["loss"]), (a, b)
    assert abs(r32.eval_loss - r16.eval_loss) <= 0.02 * r32.eval_loss
    assert all(p.dtype == torch.float32 for p in tiny[0].parameters())


def test_supervised_positions_training_matches_full_logits_training(tiny):
    a, b = _train(tiny, "fp32", loss_positions="all"), _train(tiny, "fp32", loss_positions="supervised")
    for x, y in zip(a.history, b.history):
        assert math.isclose(x["loss"], y["loss"], abs_tol=1e-4)


def test_precision_auto_on_cpu_follows_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(T, "native_bf16_cpu", lambda: False)
    assert T.mixed_precision(TrainConfig(), cpu) == "no"
    monkeypatch.setattr(T, "native_bf16_cpu", lambda: True)
    assert T.mixed_precision(TrainConfig(), cpu) == "bf16"
    assert T.mixed_precision(TrainConfig(precision="fp32"), cpu) == "no"
    assert T.mixed_precision(TrainConfig(precision="bf16"), cpu) == "bf16"
    assert isinstance(T.native_bf16_cpu(), bool)


class _NoKeepLM(torch.nn.Module):
    """A causal LM whose forward has no ``logits_to_keep`` (or ignores it: ``ignore=True`` returns every row)."""

    def __init__(self, inner, ignore: bool):
        super().__init__()
        self.inner, self.ignore = inner, ignore

    def forward(self, input_ids, attention_mask=None, labels=None, use_cache=None, **kw):
        if kw and not self.ignore:
            raise TypeError(f"unexpected keyword arguments {sorted(kw)}")
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


@pytest.mark.parametrize("ignore", [False, True])
def test_a_model_without_position_logits_trains_on_full_logits_and_says_so(tiny, ignore):
    import logging

    model, tok = tiny
    enc = encode_records(records(), tok, 64)
    tcfg = TrainConfig(max_steps=4, batch_size=8, precision="fp32", checkpoint_every=None, warmup_ratio=0.0)
    seen = []

    class Log(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    log = logging.getLogger("test-no-keep")
    log.addHandler(Log())
    log.setLevel(logging.INFO)
    wrapped = _NoKeepLM(T.build_variant_model(model, Variant("full", "full", lrs=(1e-3,)), 0), ignore)
    got = T.train_model(wrapped, tok, enc, [], tcfg, 1e-3, 0, torch.device("cpu"), progress=False, log=log, desc="full")
    plain = T.build_variant_model(model, Variant("full", "full", lrs=(1e-3,)), 0)
    want = T.train_model(plain, tok, enc, [], tcfg.model_copy(update={"loss_positions": "all"}), 1e-3, 0,
                         torch.device("cpu"), progress=False)
    assert [round(h["loss"], 5) for h in got.history] == [round(h["loss"], 5) for h in want.history]
    assert any("supervised positions only not supported" in m for m in seen), seen


def _train_lora(tiny, method="lora", frozen=True, monkeypatch=None):
    import contextlib

    model, tok = tiny
    enc = encode_records(records(), tok, 64)
    tcfg = TrainConfig(max_steps=5, batch_size=8, precision="bf16", checkpoint_every=None, warmup_ratio=0.0)
    m = T.build_variant_model(model, Variant(f"{method}-r4", method, 4, (1e-2,), 8.0), 0)
    if not frozen:
        monkeypatch.setattr(T, "bf16_frozen_linears", lambda *a, **k: contextlib.nullcontext(0))
    seen = []
    orig = T.bf16_frozen_linears

    @contextlib.contextmanager
    def spy(model, enabled=True):
        with orig(model, enabled) as n:
            seen.append((n, {p.dtype for mod in model.modules() if type(mod) is torch.nn.Linear
                             for p in [mod.weight] if not p.requires_grad}))
            yield n

    if frozen:
        monkeypatch.setattr(T, "bf16_frozen_linears", spy)
    res = T.train_model(m, tok, enc, enc[:8], tcfg, 1e-2, 0, torch.device("cpu"), progress=False)
    return m, res, seen


def test_bf16_frozen_base_weights_give_the_same_training(tiny, monkeypatch):
    """LoRA under bf16 autocast with the frozen linear weights stored in bf16 while training: the same losses,
    bit for bit, as recasting them at every step; afterwards the model holds the base's own fp32 tensors again."""
    base_ptrs = {p.data_ptr() for p in tiny[0].parameters()}
    m_on, on, seen = _train_lora(tiny, monkeypatch=monkeypatch)
    n, dtypes = seen[0]
    assert n > 0 and torch.bfloat16 in dtypes  # the lever really ran
    monkeypatch.undo()
    m_off, off, _ = _train_lora(tiny, frozen=False, monkeypatch=monkeypatch)
    assert [h["loss"] for h in on.history] == [h["loss"] for h in off.history]
    assert on.eval_loss == off.eval_loss
    for p in m_on.parameters():
        assert p.dtype == torch.float32
        if not p.requires_grad:
            assert p.data_ptr() in base_ptrs  # restored: the frozen weights are the base model's tensors
    assert all(p.dtype == torch.float32 for p in tiny[0].parameters())


def test_bf16_frozen_weights_skip_tied_and_dora(tiny):
    model, _ = tiny
    m = T.build_variant_model(model, Variant("lora-r4", "lora", 4, (1e-2,), 8.0), 0)
    emb = m.get_input_embeddings().weight
    head = m.get_output_embeddings()
    with T.bf16_frozen_linears(m) as n:
        assert n > 0
        assert m.get_input_embeddings().weight.dtype == torch.float32
        if head.weight is emb:  # tied: the head's weight is the embedding, left in fp32
            assert head.weight.dtype == torch.float32
    d = T.build_variant_model(model, Variant("dora-r4", "dora", 4, (1e-2,), 8.0), 0)
    with T.bf16_frozen_linears(d) as n:
        assert n == 0  # DoRA reads the fp32 weight for its norm: nothing is swapped
    with T.bf16_frozen_linears(m, enabled=False) as n:
        assert n == 0


def test_eager_attention_only_for_cpu_bf16_short_sequences(tiny, monkeypatch):
    model, _ = tiny
    monkeypatch.delenv("LORAFAIR_RETAIN_HEAP", raising=False)
    cpu = torch.device("cpu")
    m = T.build_variant_model(model, Variant("lora-r4", "lora", 4, (1e-2,), 8.0), 0)
    short, long = TrainConfig(max_length=128), TrainConfig(max_length=T.EAGER_MAX_LENGTH + 1)
    assert T.training_attention(m, short, cpu, "bf16") == "eager"
    assert T.training_attention(m, short, cpu, "no") is None  # fp32: the exact path keeps the model's kernel
    assert T.training_attention(m, long, cpu, "bf16") is None
    assert T.training_attention(m, short, torch.device("cuda"), "bf16") is None
    full = T.build_variant_model(model, Variant("full", "full", lrs=(1e-3,)), 0)
    # full fine-tuning: eager where freed buffers stay in the heap (glibc), SDPA where its matrices would page-fault
    assert T.training_attention(full, short, cpu, "bf16") == ("eager" if T.heap_retained() else None)
    monkeypatch.setenv("LORAFAIR_RETAIN_HEAP", "0")
    assert T.training_attention(full, short, cpu, "bf16") is None
    assert T.training_attention(m, short, cpu, "bf16") == "eager"  # LoRA gains either way
    inner = m.get_base_model()
    with T.attention_kernel(m, "eager"):
        assert inner.config._attn_implementation == "eager"
        assert model.config._attn_implementation == "sdpa"  # the base model's own config is not touched
    assert inner.config._attn_implementation == "sdpa"


def test_bf16_training_on_cpu_records_eager_attention_and_restores_the_kernel(tiny):
    model, tok = tiny
    enc = encode_records(records(), tok, 64)
    m = T.build_variant_model(model, Variant("lora-r4", "lora", 4, (1e-2,), 8.0), 0)
    tcfg = TrainConfig(max_steps=2, batch_size=8, precision="bf16", checkpoint_every=None, warmup_ratio=0.0)
    res = T.train_model(m, tok, enc, enc[:8], tcfg, 1e-2, 0, torch.device("cpu"), progress=False)
    assert res.attention == "eager" and res.to_dict()["attention"] == "eager"
    assert m.get_base_model().config._attn_implementation == "sdpa"  # put back before the eval loss
    r32 = T.train_model(T.build_variant_model(model, Variant("lora-r4", "lora", 4, (1e-2,), 8.0), 0), tok, enc, enc[:8],
                        TrainConfig(max_steps=2, batch_size=8, precision="fp32", checkpoint_every=None, warmup_ratio=0.0),
                        1e-2, 0, torch.device("cpu"), progress=False)
    assert r32.attention == "model"
