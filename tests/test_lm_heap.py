"""lorafair.lm.heap: freed buffers stay in the heap while torch works on a CPU (glibc), and only then."""

from __future__ import annotations

import os

import pytest
import torch

from lorafair.lm import heap

pytestmark = pytest.mark.skipif(heap.glibc() is None, reason="glibc only")

SCENARIO = r"""
import ctypes, json, os
import torch
from lorafair.lm import heap

BIG = 64 * 1024 * 1024  # above glibc's largest mmap threshold (32 MB)
HUGE = 1024 * 1024 * 1024


class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


f = heap.glibc().mallinfo2
f.restype = MallInfo2


def mmapped_by(nbytes):
    before = f().hblkhd
    x = torch.empty(nbytes, dtype=torch.uint8)  # untouched: no resident pages
    during = f().hblkhd
    del x
    return during - before


def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


out = {"before": mmapped_by(HUGE)}
with heap.retained_heap() as acting:
    out["acting"], out["active"] = acting, heap.active()
    out["inside"] = mmapped_by(HUGE)
    x = torch.ones(BIG, dtype=torch.uint8)  # touched: resident
    kept = rss()
    del x
    out["freed_kept"] = rss() - kept
out["active_after"] = heap.active()
out["after_trim"] = rss() - kept
out["after"] = mmapped_by(2 * HUGE)
print(json.dumps(out))
"""


def test_large_buffers_come_from_the_heap_inside_and_from_mmap_outside():
    """In a fresh process (the heap of this one holds whatever earlier tests freed): a large buffer is an mmap
    before the block, comes from the heap inside it, stays resident when freed there, is given back on exit, and
    mmap is on again after."""
    import json
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "LORAFAIR_RETAIN_HEAP"}
    run = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    big, huge = 64 * 1024 * 1024, 1024 * 1024 * 1024
    assert out["before"] >= huge  # glibc's default: a fresh mapping for a large buffer, unmapped when freed
    assert out["acting"] and out["active"] and not out["active_after"]
    assert out["inside"] == 0  # from the heap
    assert out["freed_kept"] > -big // 2  # freed inside the block, its pages stay resident for the next buffer
    assert out["after_trim"] < -big // 2  # malloc_trim gave the retained pages back
    assert out["after"] >= 2 * huge  # mmap is back on after the block


def spy_libc(monkeypatch) -> list:
    calls = []
    lib = heap.glibc()
    monkeypatch.setattr(heap, "_libc", type("L", (), {
        "mallopt": staticmethod(lambda p, v: calls.append((p, v)) or lib.mallopt(p, v)),
        "malloc_trim": staticmethod(lambda n: calls.append(("trim", n)) or lib.malloc_trim(n))})())
    return calls


def test_nested_blocks_switch_once(monkeypatch):
    calls = spy_libc(monkeypatch)
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
    calls = spy_libc(monkeypatch)
    if how == "env":
        monkeypatch.setenv("LORAFAIR_RETAIN_HEAP", "0")
    if how == "no-glibc":
        monkeypatch.setattr(heap, "_libc", None)
    with heap.retained_heap(on=how != "off") as acting:
        assert not acting and not heap.active()
    assert calls == []  # glibc's settings untouched


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
