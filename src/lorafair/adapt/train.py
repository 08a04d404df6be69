"""Training one variant: a plain loop on ``accelerate`` (runs unchanged under ``accelerate launch``:
DDP/FSDP/DeepSpeed), AdamW, warm-up + cosine/linear schedule, gradient accumulation and clipping,
bf16 autocast where supported (GPUs, and CPUs with native bf16; fp32 master weights), held-out loss at the
end. The same data order for every variant (a seeded sampler, by default length-grouped:
:class:`LengthGroupedBatches`), so variants differ only by the method. The loss is computed only at
supervised positions (:func:`supervised_loss`: hidden states -> the positions whose next token is a label ->
LM head -> cross-entropy), the same loss as the model's full-logits one up to float rounding. Under bf16
autocast a single process keeps the frozen base weights in bf16 for the loop (bit-identical, no per-step
cast) and a LoRA-family training on a CPU with sequences of at most 256 tokens uses eager attention
(:func:`training_levers`).
A fairness strategy may add a loss term (``objective``).

Divergence: a training loss (or the final held-out loss) that is not finite stops that training
(:class:`Diverged`); an lr grid never picks a diverged run, and a variant whose every lr diverged
fails (:class:`VariantFailed`); the runner records it and goes on with the other variants.

Checkpoints (``train.checkpoint_every``): every N optimiser steps the resumable state of the training
in progress — the *trainable* parameters only (a LoRA adapter, not the base), their pending gradients,
optimizer and scheduler state, RNG states, the step, the losses so far — is written atomically to
``<checkpoint dir>/lr-<i>/step-<N>/``. A resumed training rebuilds the variant from (config, seed), loads
that state and replays the data loader to the same position, so it sees the same batches and ends with the
same numbers as an uninterrupted one. In an lr grid each finished lr's result (and the best lr's trained
parameters) is kept too, so a grid killed in its last lr does not retrain the others. The runner removes
the folder once the variant is saved. The files themselves are written and read by
:mod:`lorafair.adapt.checkpoint` (:class:`~lorafair.adapt.checkpoint.StepCheckpoint`,
:class:`~lorafair.adapt.checkpoint.TrainingCheckpoint`); this module only decides when.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
from tqdm.auto import tqdm

from lorafair.adapt.checkpoint import (StepCheckpoint, TrainingCheckpoint, attach_gathered_state, load_trainable_state,
                                      restore_training, set_rng_state, trainable_state)
from lorafair.adapt.peft_methods import peft_config
from lorafair.adapt.shared_copy import variant_copy
from lorafair.adapt.tokenize import IGNORE, collate, sequence_nll
from lorafair.adapt.variants import Variant
from lorafair.config.schema import TrainConfig
from lorafair.lm.heap import enabled as heap_retained, retained_heap
from lorafair.lm.precision import bf16_linear_weights, native_bf16_cpu


@dataclass
class TrainResult:
    lr: float
    steps: int
    train_loss: float  # mean loss of the last 10% of steps
    eval_loss: float  # mean token NLL on the held-out split (nan: no held-out data; written as null)
    tokens: int
    wall_s: float
    tokens_per_s: float
    trainable_params: int
    world_size: int = 1
    precision: str = "fp32"  # what the training ran in: "bf16" (autocast, fp32 master weights) or "fp32"
    attention: str = "model"  # the attention kernel of the training: "model" (the model's own) or "eager"
    history: list[dict] = field(default_factory=list)
    lr_search: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready: a number that is not finite (no held-out loss) becomes null, never NaN."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainResult":
        names = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in names}
        for k in ("train_loss", "eval_loss"):
            if d.get(k) is None:
                d[k] = float("nan")
        return cls(**d)


class Diverged(Exception):
    """One training (one variant at one learning rate) stopped: its loss is not finite."""

    def __init__(self, variant: str, lr: float, step: int, steps: int, loss: float, what: str = "loss"):
        self.variant, self.lr, self.step, self.steps, self.loss, self.what = variant, lr, step, steps, loss, what
        super().__init__(f"{variant}: {what} not finite ({loss}) at step {step} of {steps} (lr {lr:g})")

    @property
    def reason(self) -> str:
        return f"{self.what} not finite at step {self.step} (lr {self.lr:g})"

    def to_dict(self) -> dict:
        return {"lr": self.lr, "status": "failed", "step": self.step, "loss": str(self.loss), "reason": self.reason,
                "eval_loss": None, "train_loss": None}


class VariantFailed(Exception):
    """Every learning rate of a variant diverged: the variant has no trained model."""

    def __init__(self, variant: str, failures: list[Diverged], lr_search: list[dict]):
        self.variant, self.failures, self.lr_search = variant, failures, lr_search
        if len(failures) == 1:
            self.note = failures[0].reason
        else:
            whats = {f.what for f in failures}
            self.note = f"{whats.pop() if len(whats) == 1 else 'loss'} not finite at every lr (" + "; ".join(
                f"lr {f.lr:g}: step {f.step}" for f in failures) + ")"
        super().__init__(f"{variant}: {self.note}")

    def to_dict(self) -> dict:
        """The failure part of the variant's ``train.json`` marker."""
        first = self.failures[0]
        return {"status": "failed", "reason": self.note, "step": first.step, "lr": first.lr, "loss": str(first.loss),
                "steps": first.steps, "failures": [f.to_dict() for f in self.failures], "lr_search": self.lr_search}


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_variant_model(base_model, variant: Variant, seed: int):
    """A fresh trainable copy of ``base_model`` for ``variant`` (the base model is never modified; a LoRA-family
    variant shares its frozen weights: :func:`lorafair.adapt.shared_copy.variant_copy`)."""
    seed_everything(seed)
    model = variant_copy(base_model, variant.method)
    if variant.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import get_peft_model

    tm = variant.target_modules if isinstance(variant.target_modules, str) else list(variant.target_modules)
    return get_peft_model(model, peft_config(variant.method, variant.rank, variant.alpha, variant.dropout, tm))


def mixed_precision(tcfg: TrainConfig, device: torch.device) -> str:
    """accelerate's ``mixed_precision`` for ``tcfg.precision`` on ``device``: "bf16" (autocast) or "no"."""
    if tcfg.precision == "fp32":
        return "no"
    if tcfg.precision == "bf16":
        return "bf16"
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    if device.type == "cpu" and native_bf16_cpu():  # lorafair.lm.precision's probe
        return "bf16"
    return "no"


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Batches of indices of records of similar length, seeded and deterministic per (seed, epoch).

    Each epoch: a seeded permutation, cut into mega-batches of ``mult`` batches (``mult`` = 50, fewer on small
    data, as the HF Trainer's ``LengthGroupedSampler``); each mega-batch sorted by length (longest first, ties
    by position in the permutation) and cut into batches; then the order of all batches is shuffled with the
    same generator so lengths are not visited in a pattern. ``set_epoch`` (called by accelerate) chooses the
    epoch; otherwise each iteration is the next epoch."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, mult: int = 50):
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.mult = max(1, min(mult, len(self.lengths) // (4 * batch_size)))
        self.epoch, self._explicit = 0, False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._explicit = epoch, True

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def batches(self, epoch: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.lengths), generator=g).tolist()
        mega = self.mult * self.batch_size
        out = []
        for i in range(0, len(perm), mega):
            chunk = sorted(perm[i:i + mega], key=lambda j: -self.lengths[j])  # stable: ties keep the shuffle
            out += [chunk[k:k + self.batch_size] for k in range(0, len(chunk), self.batch_size)]
        order = torch.randperm(len(out), generator=g).tolist()
        return [out[k] for k in order]

    def __iter__(self):
        epoch = self.epoch
        if not self._explicit:
            self.epoch += 1
        self._explicit = False
        yield from self.batches(epoch)


def train_loader(train_enc: list[dict], tcfg: TrainConfig, seed: int, pad: int,
                 objective=None) -> torch.utils.data.DataLoader:
    """The training batches: length-grouped (``tcfg.group_by_length``) or the plain seeded shuffle. With an
    ``objective`` (a :class:`lorafair.strategies.Objective`), each batch also holds its ``collate`` tensors."""
    if objective is None:
        collate_fn = lambda b: collate(b, pad)  # noqa: E731
    else:
        collate_fn = lambda b: collate(b, pad) | objective.collate(b, pad)  # noqa: E731
    if tcfg.group_by_length:
        sampler = LengthGroupedBatches([len(e["input_ids"]) for e in train_enc], tcfg.batch_size, seed)
        return torch.utils.data.DataLoader(train_enc, batch_sampler=sampler, collate_fn=collate_fn)
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(train_enc, batch_size=tcfg.batch_size, shuffle=True, generator=gen,
                                       collate_fn=collate_fn)


class _NoPositionLogits(Exception):
    """The model's forward cannot compute logits at chosen positions only (no boolean ``logits_to_keep``)."""


def supervised_loss(model, batch: dict, *, with_logits: bool = False):
    """The mean next-token cross-entropy over the supervised positions of ``batch``, computing logits only there:
    the model's body gives hidden states, ``logits_to_keep`` (a boolean (batch, length) mask: position t is kept
    when label t+1 is not ignored) selects them before the LM head, and the cross-entropy (in fp32, as the
    model's own loss) runs over those rows. Equal to ``model(..., labels=labels).loss`` up to float rounding.
    With ``with_logits``: ``(loss, logits, keep)``, the kept rows' logits (row-major order of ``keep``) for a
    fairness objective that reads them (``Objective.penalty_from_logits``) instead of a second forward pass.
    Raises :class:`_NoPositionLogits` when the model does not return one row of logits per kept position."""
    labels = batch["labels"]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE
    target = labels[:, 1:][keep[:, :-1]]
    try:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep,
                    use_cache=False)
    except (TypeError, IndexError, ValueError) as e:
        raise _NoPositionLogits(str(e)) from e
    logits = out.logits
    if logits.dim() != 2 or logits.shape[0] != target.numel():
        raise _NoPositionLogits(f"logits of shape {tuple(logits.shape)} for {target.numel()} kept positions")
    loss = torch.nn.functional.cross_entropy(logits.float(), target)
    return (loss, logits, keep) if with_logits else loss


def full_loss(model, batch: dict) -> torch.Tensor:
    """The model's own loss over full logits (``train.loss_positions: all``)."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss


def adamw(params: list, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused (one kernel per step for all parameters, as the HF Trainer's default ``adamw_torch_fused``)
    where every parameter is a floating tensor on a CPU or CUDA device; else the default (foreach) kernel.
    The same update rule either way, up to float rounding."""
    fused = bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


def num_steps(tcfg: TrainConfig, n_train: int, world: int = 1) -> int:
    if tcfg.max_steps:
        return tcfg.max_steps
    per_step = tcfg.batch_size * tcfg.grad_accum * world
    return max(1, math.ceil(tcfg.epochs * n_train / per_step))


# ---------------------------------------------------------------------------------------- training

def _allow_precision(precision: str) -> None:
    """accelerate keeps one mixed-precision setting per process (its ``AcceleratorState`` singleton refuses a
    second one); a training in another precision than the one before it in this process (a benchmark, a
    test comparing bf16 with fp32) resets that state, keeping the process group (``PartialState``)."""
    from accelerate.state import AcceleratorState

    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision", precision) != precision:
        AcceleratorState._reset_state(reset_partial_state=False)


def bf16_frozen_linears(model, enabled: bool = True):
    """The frozen weights of ``model``'s plain linear layers as bf16 copies for the duration of a training
    (:func:`lorafair.lm.precision.bf16_linear_weights`; trainable weights are left to autocast's cache)."""
    return bf16_linear_weights(model, enabled)


def _transformers_model(model):
    """The transformers model of ``model``: the one under a PEFT wrapper, else ``model`` itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


EAGER_MAX_LENGTH = 256  # longest training sequences for which eager attention was measured faster on a CPU


def training_attention(model, tcfg: TrainConfig, device: torch.device, precision: str) -> str | None:
    """The attention kernel a training should use instead of the model's, or None to keep it: on a CPU under bf16
    autocast with sequences of at most :data:`EAGER_MAX_LENGTH` tokens, ``eager`` attention in place of SDPA
    (PyTorch's CPU flash-attention backward is slow at these lengths: on SmolLM2-135M, batches of 8 BOLD sentences
    of ≤ 128 tokens, eager trained LoRA r16 1.20–1.22× faster in three runs, and full fine-tuning 1.14× faster with
    freed buffers kept in the heap (:func:`lorafair.lm.heap.retained_heap`; ``bench_train_levers.py``); without
    that, eager's attention matrices page-faulted at every step and full fine-tuning measured 0.83–1.16×, so a full
    fine-tuning keeps SDPA where the heap is not retained; docs/performance.md). fp32 training (the
    exact-reproduction path) and GPUs keep the model's kernel."""
    if device.type != "cpu" or precision != "bf16" or tcfg.max_length > EAGER_MAX_LENGTH:
        return None
    if not hasattr(model, "peft_config") and not heap_retained():
        return None
    inner = _transformers_model(model)
    cfg = getattr(inner, "config", None)
    if getattr(cfg, "_attn_implementation", None) != "sdpa" or not hasattr(inner, "set_attn_implementation"):
        return None
    return "eager"


@contextlib.contextmanager
def attention_kernel(model, kernel: str | None):
    """For the duration of the block, ``model`` (a variant's own copy: its config is its own) uses attention
    ``kernel``; the model's own kernel is put back on exit. ``None``: nothing changes."""
    if kernel is None:
        yield None
        return
    inner = _transformers_model(model)
    before = inner.config._attn_implementation
    inner.set_attn_implementation(kernel)
    try:
        yield kernel
    finally:
        inner.set_attn_implementation(before)


@contextlib.contextmanager
def training_levers(model, tcfg: TrainConfig, device: torch.device, precision: str, processes: int):
    """The training loop's levers on ``model`` (unwrapped), undone on exit: a single process's frozen base
    weights stored in bf16 (:func:`bf16_frozen_linears`), the attention kernel of :func:`training_attention` and,
    on a CPU, freed buffers kept in the heap for the next step (:func:`lorafair.lm.heap.retained_heap`).
    Yields that kernel (None: the model's own)."""
    with retained_heap(device.type == "cpu"), bf16_frozen_linears(model, precision == "bf16" and processes == 1), \
            attention_kernel(model, training_attention(model, tcfg, device, precision)) as kernel:
        yield kernel


def train_model(model, tok, train_enc: list[dict], eval_enc: list[dict], tcfg: TrainConfig, lr: float, seed: int,
                device: torch.device, *, progress: bool = True, log=None, desc: str = "train",
                checkpoint: Optional[StepCheckpoint] = None, objective=None) -> TrainResult:
    """Train ``model`` in place; return losses and throughput. Raises :class:`Diverged` when a training
    loss or the held-out loss is not finite. With ``checkpoint``, resumes from its saved state and saves
    one every ``checkpoint.every`` steps. With ``objective`` (a fairness strategy's
    :class:`lorafair.strategies.Objective`), ``objective.penalty(model, batch)`` is added to the LM loss of
    every micro-batch (the reported losses stay the LM loss; the history records the mean penalty too)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedType
    from transformers import get_scheduler

    precision = mixed_precision(tcfg, device)
    _allow_precision(precision)
    acc = Accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=tcfg.grad_accum,
        cpu=device.type == "cpu",
    )
    if checkpoint is not None and acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        if log:
            log.warning("%s: checkpoints inside a variant are not supported under %s; training without them",
                        desc, acc.distributed_type)
        checkpoint = None
    pad = tok.pad_token_id
    loader = train_loader(train_enc, tcfg, seed, pad, objective)
    position_loss = tcfg.loss_positions == "supervised"
    # an objective that reads the supervised positions' logits (dpreg/eoreg: the answer position) takes them
    # from the LM loss's forward pass: one forward and one backward per micro-batch instead of two
    from_logits = getattr(objective, "penalty_from_logits", None)
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    opt = adamw(params, lr, tcfg.weight_decay)
    steps = num_steps(tcfg, len(train_enc), acc.num_processes)
    warm = int(round(tcfg.warmup_ratio * steps))
    sched = get_scheduler(tcfg.schedule if tcfg.schedule != "constant" else "constant_with_warmup", opt,
                          num_warmup_steps=warm, num_training_steps=steps)
    model.train()
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    history, losses = [], []
    tokens, step, done_s = 0, 0, 0.0

    def batches():
        while True:
            yield from loader

    it = batches()
    state = checkpoint.load(acc) if checkpoint is not None else None
    if state is not None:
        restore_training(acc, model, opt, sched, state)
        p = state["progress"]
        step, tokens, history, losses, done_s = p["step"], p["tokens"], p["history"], p["losses"], p["wall_s"]
        for _ in range(step * tcfg.grad_accum):  # the same data-loader position: replay the batches seen
            next(it)
        set_rng_state(state["rng"])
        if log:
            log.info("%s: resumed from checkpoint at step %d of %d", desc, step, steps)
    t0 = time.perf_counter() - done_s
    bar = tqdm(total=steps, initial=step, desc=desc, disable=not (progress and acc.is_main_process), leave=False,
               unit="step")
    # the bf16 levers (training_levers) hold for the loop only: undone before the eval loss
    with training_levers(acc.unwrap_model(model), tcfg, acc.device, precision, acc.num_processes) as attention:
        while step < steps:
            step_loss, step_penalty = 0.0, 0.0
            for _ in range(tcfg.grad_accum):
                batch = next(it)
                with acc.accumulate(model):
                    loss, kept = None, None
                    if position_loss:
                        try:
                            if from_logits is not None:
                                loss, *kept = supervised_loss(model, batch, with_logits=True)
                            else:
                                loss = supervised_loss(model, batch)
                        except _NoPositionLogits as e:
                            position_loss = False
                            if log:
                                log.info("%s: logits at supervised positions only not supported by this model (%s); "
                                         "computing full logits", desc, e)
                    if loss is None:
                        loss = full_loss(model, batch)
                    value = float(loss.detach())
                    bad = not math.isfinite(value)
                    if acc.num_processes > 1:  # every process stops together
                        bad = bool(acc.reduce(torch.tensor(float(bad), device=acc.device), reduction="sum").item())
                    if bad:
                        bar.close()
                        raise Diverged(desc, lr, step + 1, steps, value)
                    if objective is not None:  # a fairness strategy's term (λ × penalty), added to the LM loss
                        pen = from_logits(*kept, batch) if kept else None
                        if pen is None:  # the objective's positions were not all supervised: its own pass
                            pen = objective.penalty(model, batch)
                        pv = float(pen.detach())
                        if not math.isfinite(pv):
                            bar.close()
                            raise Diverged(desc, lr, step + 1, steps, pv, what="fairness penalty")
                        step_penalty += pv / tcfg.grad_accum
                        loss = loss + pen
                    acc.backward(loss)
                    if acc.sync_gradients and tcfg.grad_clip:
                        acc.clip_grad_norm_(params, tcfg.grad_clip)
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                step_loss += value / tcfg.grad_accum
                tokens += int(batch["attention_mask"].sum()) * acc.num_processes
            step += 1
            losses.append(step_loss)
            elapsed = time.perf_counter() - t0
            history.append({"step": step, "loss": round(step_loss, 5), "lr": sched.get_last_lr()[0]}
                           | ({"penalty": round(step_penalty, 6)} if objective is not None else {}))
            bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{tokens / max(elapsed, 1e-9):.0f}")
            bar.update(1)
            if checkpoint is not None and checkpoint.due(step, steps):
                checkpoint.save(acc, model, opt, sched, {"step": step, "tokens": tokens, "history": history,
                                                         "losses": losses, "wall_s": elapsed, "acc_step": acc.step,
                                                         "lr": lr, "steps": steps})
    bar.close()
    wall = time.perf_counter() - t0
    gathered = None
    if acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        # sharded weights: gather the full state dict now (a collective: every process) so that what is saved is
        # complete (lorafair.adapt.checkpoint.attach_gathered_state)
        gathered = acc.get_state_dict(model)
    model = acc.unwrap_model(model)
    if gathered is not None:
        attach_gathered_state(model, gathered)
    model.eval()
    eval_loss = float("nan")
    if eval_enc:
        nll, cnt = sequence_nll(model, eval_enc, pad, tcfg.eval_batch_size, device=acc.device)
        eval_loss = sum(nll) / max(1, sum(cnt))
        if not math.isfinite(eval_loss):
            raise Diverged(desc, lr, steps, steps, eval_loss, what="held-out loss")
    tail = losses[-max(1, len(losses) // 10):]
    if log:
        log.info("%s: lr=%g steps=%d train_loss=%.4f eval_loss=%.4f tokens/s=%.0f", desc, lr, steps,
                 sum(tail) / len(tail), eval_loss, tokens / max(wall, 1e-9))
    return TrainResult(lr=lr, steps=steps, train_loss=sum(tail) / len(tail), eval_loss=eval_loss, tokens=tokens,
                       wall_s=wall, tokens_per_s=tokens / max(wall, 1e-9), trainable_params=trainable,
                       world_size=acc.num_processes, precision="bf16" if precision == "bf16" else "fp32",
                       attention=attention or "model",
                       history=history)


def _better(res: TrainResult, best: Optional[TrainResult]) -> bool:
    """Lower held-out loss wins (the first of equals); without held-out data, lower training loss."""
    if best is None:
        return True
    if math.isfinite(res.eval_loss) or math.isfinite(best.eval_loss):
        return math.isfinite(res.eval_loss) and (not math.isfinite(best.eval_loss) or res.eval_loss < best.eval_loss)
    return res.train_loss < best.train_loss


def train_variant(base_model, tok, variant: Variant, train_enc, eval_enc, tcfg: TrainConfig, seed: int, device,
                  *, progress=True, log=None, checkpoint_dir: Optional[Path] = None, key: str = "",
                  is_main: bool = True, objective=None):
    """Train ``variant`` once per learning rate of its grid; return (best model, its TrainResult).

    A learning rate whose training diverges is recorded in ``lr_search`` and never picked; when every one
    diverges, raises :class:`VariantFailed`. With ``checkpoint_dir`` (and ``tcfg.checkpoint_every``),
    each lr's training is resumable (``lr-<i>/``), and in a grid each finished lr's result
    (``lr-<i>/result.json``) and the best lr's trained parameters (``lr-<i>/final.safetensors``) are
    kept until the runner removes the folder. ``objective``: a fairness strategy's loss term (:func:`train_model`)."""
    every = getattr(tcfg, "checkpoint_every", None)
    ck = TrainingCheckpoint(checkpoint_dir) if checkpoint_dir is not None and every else None
    grid = len(variant.lrs) > 1
    best: Optional[tuple[object, TrainResult, int]] = None
    search, failures = [], []
    for i, lr in enumerate(variant.lrs):
        desc = f"{variant.name} lr={lr:g}" if grid else variant.name
        slot = ck.lr(i, f"{key}/lr{i}={lr!r}") if ck is not None else None
        done = slot.result() if slot is not None and grid else None
        if slot is not None and is_main and slot.stale():  # left by another config of this variant
            slot.remove()
            done = None
        if done is not None:
            if done.get("status") == "failed":
                d = done["diverged"]
                failures.append(Diverged(desc, lr, d["step"], d["steps"], float(d["loss"]), d["what"]))
                search.append(failures[-1].to_dict())
                if log:
                    log.info("%s: diverged before (%s), not retrained", desc, failures[-1].reason)
                continue
            res = TrainResult.from_dict(done["result"])
            search.append({"lr": lr, "eval_loss": done["result"]["eval_loss"], "train_loss": res.train_loss})
            if log:
                log.info("%s: trained before (eval_loss=%.4f), not retrained", desc, res.eval_loss)
            if _better(res, best[1] if best else None):
                best = (None, res, i)
            continue
        model = build_variant_model(base_model, variant, seed).to(device)
        steps_ck = slot.steps(every, log=log) if slot is not None else None
        try:
            res = train_model(model, tok, train_enc, eval_enc, tcfg, lr, seed, device, progress=progress, log=log,
                              desc=desc, checkpoint=steps_ck, objective=objective)
        except Diverged as e:
            del model
            failures.append(e)
            search.append(e.to_dict())
            if log:
                log.warning("%s: %s; this lr is not used", variant.name, e.reason)
            if slot is not None and grid and is_main:
                slot.save_failed(e.step, e.steps, e.loss, e.what)
            continue
        search.append({"lr": lr, "eval_loss": res.to_dict()["eval_loss"], "train_loss": res.train_loss})
        better = _better(res, best[1] if best else None)
        if slot is not None and grid and is_main:
            slot.save_result(res.to_dict(), trainable_state(model) if better else None)
            if better and best is not None:
                ck.lr(best[2]).drop_final()
            slot.drop_steps()
        if better:
            best = (model, res, i)
        else:
            del model
    if best is None:
        raise VariantFailed(variant.name, failures, search)
    model, res, i = best
    if model is None:  # the best lr finished before a resume: rebuild it from its saved parameters
        model = build_variant_model(base_model, variant, seed).to(device)
        load_trainable_state(model, ck.lr(i).final_state())
        model.eval()
    res.lr_search = search
    return model, res
