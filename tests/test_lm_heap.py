"""lorafair.lm.heap: freed buffers stay in the heap while torch works on a CPU (glibc), and only then."""

from __future__ import annotations

import ctypes
import os

import pytest
import torch

from lorafair.lm import heap

pytestmark = pytest.mark.skipif(heap.glibc() is None, reason="glibc only")

BIG = 64 * 1024 * 1024  # above glibc's largest mmap threshold (32 MB)
HUGE = 1024 * 1024 * 1024  # larger than any free chunk the heap may hold: glibc serves it by mmap unless told not to


class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


def mallinfo() -> MallInfo2:
    f = heap.glibc().mallinfo2
    f.restype = MallInfo2
    return f()


def mmapped_by(nbytes: int) -> int:
    """Bytes glibc serves by mmap while an (untouched) allocation of ``nbytes`` is alive."""
    before = mallinfo().hblkhd
    x = torch.empty(nbytes, dtype=torch.uint8)
    during = mallinfo().hblkhd
    del x
    return during - before


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_large_buffers_come_from_the_heap_inside_and_from_mmap_outside(monkeypatch):
    monkeypatch.delenv("LORAFAIR_RETAIN_HEAP", raising=False)
    assert mmapped_by(HUGE) >= HUGE  # glibc's default: a fresh mapping for a large buffer, unmapped when freed
    with heap.retained_heap() as acting:
        assert acting and heap.active()
        assert mmapped_by(HUGE) == 0  # from the heap
        x = torch.ones(BIG, dtype=torch.uint8)  # touched: resident
        kept = rss()
        del x
        assert rss() > kept - BIG // 2  # freed, but its pages stay resident for the next buffer
    assert not heap.active()
    assert rss() < kept - BIG // 2  # malloc_trim gave the retained pages back
    assert mmapped_by(2 * HUGE) >= 2 * HUGE  # mmap is back on after the block


def test_nested_blocks_switch_once(monkeypatch):
    calls = []
    lib = heap.glibc()
    monkeypatch.setattr(heap, "_libc", type("L", (), {
        "mallopt": staticmethod(lambda p, v: calls.append((p, v)) or lib.mallopt(p, v)),
        "malloc_trim": staticmethod(lambda n: calls.append(("trim", n)) or lib.malloc_trim(n))})())
    with heap.retained_heap():
        with heap.retained_heap():
            pass
        assert heap.active()
        assert calls == [(heap.M_MMAP_MAX, 0), (heap.M_TRIM_THRESHOLD, heap.RETAINED_TRIM_THRESHOLD)]
    assert not heap.active()
    assert calls[2:] == [(heap.M_MMAP_MAX, heap.DEFAULT_MMAP_MAX), (heap.M_MMAP_THRESHOLD, heap.CONVERGED_MMAP_THRESHOLD),
                         (heap.M_TRIM_THRESHOLD, heap.CONVERGED_TRIM_THRESHOLD), ("trim", 0)]


@pytest.mark.parametrize("how", ["env", "off", "no-glibc"])
def test_does_nothing_when_switched_off_or_without_glibc(monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("LORAFAIR_RETAIN_HEAP", "0")
    if how == "no-glibc":
        monkeypatch.setattr(heap, "_libc", None)
    with heap.retained_heap(on=how != "off") as acting:
        assert not acting and not heap.active()
        if how != "no-glibc":
            assert mmapped_by(2 * HUGE) >= 2 * HUGE


def test_active_while_the_engine_scores_and_while_a_training_steps(monkeypatch):
    """The LM engine's passes and the training loop's steps run inside the block on a CPU; it is closed after."""
    from lorafair.adapt import train as T
    from lorafair.adapt.variants import Variant
    from lorafair.config.schema import TrainConfig
    from lorafair.lm import LM
    from lorafair.models.sources import load_model

    monkeypatch.delenv("LORAFAIR_RETAIN_HEAP", raising=False)
    model, tok = load_model("tiny:llama")
    seen = []
    hook = model.register_forward_hook(lambda *a: seen.append(heap.active()))
    LM(model, tok, batch_size=4).rolling_nll(["a short text", "another one here"], max_length=32)
    hook.remove()
    assert seen and all(seen)
    assert not heap.active()

    steps = []
    loss = T.supervised_loss
    monkeypatch.setattr(T, "supervised_loss", lambda *a, **k: steps.append(heap.active()) or loss(*a, **k))
    enc = [{"input_ids": [1, 5, 6, 7], "attention_mask": [1, 1, 1, 1], "labels": [1, 5, 6, 7]}] * 4
    tcfg = TrainConfig(max_steps=2, batch_size=2, max_length=16, precision="fp32", checkpoint_every=None)
    T.train_variant(model, tok, Variant("full", "full", lrs=(1e-4,)), enc, [], tcfg, 0, torch.device("cpu"),
                    progress=False)
    assert steps == [True, True]
    assert not heap.active()
