"""Training one variant: a plain loop on ``accelerate`` (runs unchanged under ``accelerate launch``:
DDP/FSDP/DeepSpeed), AdamW, warm-up + cosine/linear schedule, gradient accumulation and clipping,
bf16 autocast where supported, held-out loss at the end. The same data order for every variant
(a seeded sampler), so variants differ only by the method.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from lorafair.adapt.peft_methods import peft_config
from lorafair.adapt.tokenize import collate, sequence_nll
from lorafair.adapt.variants import Variant
from lorafair.config.schema import TrainConfig


@dataclass
class TrainResult:
    lr: float
    steps: int
    train_loss: float  # mean loss of the last 10% of steps
    eval_loss: float  # mean token NLL on the held-out split
    tokens: int
    wall_s: float
    tokens_per_s: float
    trainable_params: int
    world_size: int = 1
    history: list[dict] = field(default_factory=list)
    lr_search: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_variant_model(base_model, variant: Variant, seed: int):
    """A fresh trainable copy of ``base_model`` for ``variant`` (the base model is never modified)."""
    seed_everything(seed)
    model = copy.deepcopy(base_model)
    if variant.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import get_peft_model

    tm = variant.target_modules if isinstance(variant.target_modules, str) else list(variant.target_modules)
    return get_peft_model(model, peft_config(variant.method, variant.rank, variant.alpha, variant.dropout, tm))


def mixed_precision(tcfg: TrainConfig, device: torch.device) -> str:
    if tcfg.precision == "fp32":
        return "no"
    if tcfg.precision == "bf16":
        return "bf16"
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def num_steps(tcfg: TrainConfig, n_train: int, world: int = 1) -> int:
    if tcfg.max_steps:
        return tcfg.max_steps
    per_step = tcfg.batch_size * tcfg.grad_accum * world
    return max(1, math.ceil(tcfg.epochs * n_train / per_step))


def train_model(model, tok, train_enc: list[dict], eval_enc: list[dict], tcfg: TrainConfig, lr: float, seed: int,
                device: torch.device, *, progress: bool = True, log=None, desc: str = "train") -> TrainResult:
    """Train ``model`` in place; return losses and throughput."""
    from accelerate import Accelerator
    from transformers import get_scheduler

    acc = Accelerator(
        mixed_precision=mixed_precision(tcfg, device),
        gradient_accumulation_steps=tcfg.grad_accum,
        cpu=device.type == "cpu",
    )
    pad = tok.pad_token_id
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        train_enc, batch_size=tcfg.batch_size, shuffle=True, generator=gen, collate_fn=lambda b: collate(b, pad)
    )
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=tcfg.weight_decay)
    steps = num_steps(tcfg, len(train_enc), acc.num_processes)
    warm = int(round(tcfg.warmup_ratio * steps))
    sched = get_scheduler(tcfg.schedule if tcfg.schedule != "constant" else "constant_with_warmup", opt,
                          num_warmup_steps=warm, num_training_steps=steps)
    model.train()
    model, opt, loader, sched = acc.prepare(model, opt, loader, sched)
    history, losses = [], []
    tokens, step, t0 = 0, 0, time.perf_counter()
    bar = tqdm(total=steps, desc=desc, disable=not (progress and acc.is_main_process), leave=False, unit="step")

    def batches():
        while True:
            yield from loader

    it = batches()
    while step < steps:
        step_loss = 0.0
        for _ in range(tcfg.grad_accum):
            batch = next(it)
            with acc.accumulate(model):
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
                loss = out.loss
                acc.backward(loss)
                if acc.sync_gradients and tcfg.grad_clip:
                    acc.clip_grad_norm_(params, tcfg.grad_clip)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
            step_loss += float(loss.detach()) / tcfg.grad_accum
            tokens += int(batch["attention_mask"].sum()) * acc.num_processes
        step += 1
        losses.append(step_loss)
        elapsed = time.perf_counter() - t0
        history.append({"step": step, "loss": round(step_loss, 5), "lr": sched.get_last_lr()[0]})
        bar.set_postfix(loss=f"{step_loss:.3f}", tok_s=f"{tokens / max(elapsed, 1e-9):.0f}")
        bar.update(1)
    bar.close()
    wall = time.perf_counter() - t0
    model = acc.unwrap_model(model)
    model.eval()
    eval_loss = float("nan")
    if eval_enc:
        nll, cnt = sequence_nll(model, eval_enc, pad, tcfg.eval_batch_size, device=acc.device)
        eval_loss = sum(nll) / max(1, sum(cnt))
    tail = losses[-max(1, len(losses) // 10):]
    if log:
        log.info("%s: lr=%g steps=%d train_loss=%.4f eval_loss=%.4f tokens/s=%.0f", desc, lr, steps,
                 sum(tail) / len(tail), eval_loss, tokens / max(wall, 1e-9))
    return TrainResult(lr=lr, steps=steps, train_loss=sum(tail) / len(tail), eval_loss=eval_loss, tokens=tokens,
                       wall_s=wall, tokens_per_s=tokens / max(wall, 1e-9), trainable_params=trainable,
                       world_size=acc.num_processes, history=history)


def train_variant(base_model, tok, variant: Variant, train_enc, eval_enc, tcfg: TrainConfig, seed: int, device,
                  *, progress=True, log=None):
    """Train ``variant`` once per learning rate of its grid; return (best model, its TrainResult)."""
    best = None
    search = []
    for lr in variant.lrs:
        model = build_variant_model(base_model, variant, seed).to(device)
        res = train_model(model, tok, train_enc, eval_enc, tcfg, lr, seed, device, progress=progress, log=log,
                          desc=f"{variant.name} lr={lr:g}" if len(variant.lrs) > 1 else variant.name)
        search.append({"lr": lr, "eval_loss": res.eval_loss, "train_loss": res.train_loss})
        if best is None or (res.eval_loss < best[1].eval_loss) or math.isnan(best[1].eval_loss):
            best = (model, res)
        else:
            del model
    model, res = best
    res.lr_search = search
    return model, res
