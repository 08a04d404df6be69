"""Saving and loading weights, in one place (as torchtune keeps its checkpointers apart from its recipes):
the training loop (:mod:`lorafair.adapt.train`) and the runner (:mod:`lorafair.run.runner`) call these and
never write a weight file themselves. Where the files live is the run layout's business
(:class:`lorafair.run.layout.RunLayout`); how they are written is this module's.

A trained variant (what a run keeps):

- :func:`save_adapter` / :func:`load_adapter`: a PEFT adapter folder (``save_pretrained``, safetensors);
- :func:`save_full_weights` / :func:`load_full_weights`: the full model's raw weights as one safetensors file
  (tied weights stored once), loaded into a copy of the base model;
- :func:`export_pretrained`: a ``save_pretrained`` folder with the tokenizer, loadable as ``hf:<folder>``.

Each is written under a temporary name in the destination's folder (``.adapter.*``, ``.model.*``:
:data:`TEMP_PREFIXES`, which the run directory's clean-up removes after a kill), fsynced, then renamed, so
the marker that announces it (``train.json``, :func:`write_marker`) never points at a half-written file.

The state of a training in progress (``train.checkpoint_every``), in a variant's checkpoint folder
(:class:`TrainingCheckpoint`), one ``lr-<i>/`` folder per learning rate of its grid (:class:`LrCheckpoint`):

- ``step-NNNNNNN/`` and ``latest.json`` (:class:`StepCheckpoint`): the *trainable* parameters only (a LoRA
  adapter, not the base), their pending gradients, optimizer and scheduler state, RNG states, the step and the
  losses so far — what :func:`restore_training` puts back so a resumed training ends with the same numbers;
- in an lr grid, ``result.json`` (a finished lr's result, or how it diverged) and ``final.safetensors`` (the
  best lr's trained parameters so far), so a grid killed in its last lr does not retrain the others.

Every state is tied to one training by a ``key`` (the runner's variant fingerprint and the lr): a checkpoint
of another training is ignored and removed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import torch

from lorafair.atomic import atomic_write_json, fsync_dir, fsync_tree, make_temp_dir

# temporary names of weight folders and files being written (removed by the run directory's clean-up)
TEMP_PREFIXES = (".model.", ".adapter.")


# ---------------------------------------------------------------------------------------- trained variants

# Under FSDP or DeepSpeed ZeRO-3 each process holds a shard of every parameter: a model's own ``state_dict()``
# (what ``save_pretrained`` reads) is then a shard, or empty tensors, and the adapter saved from it is empty
# (peft#1402, trl#4416). The training loop gathers the full state dict (``Accelerator.get_state_dict``, every
# process taking part; complete on the main process) and attaches it here; the save functions write it.
_GATHERED = "_lorafair_gathered_state_dict"


def attach_gathered_state(model, state_dict: dict) -> None:
    """Keep the full state dict gathered from a sharded training on ``model``, for the save functions."""
    model.__dict__[_GATHERED] = state_dict


def gathered_state(model) -> Optional[dict]:
    return model.__dict__.get(_GATHERED)


def save_full_weights(model, path: Path) -> None:
    """The full model's state dict as one safetensors file at ``path`` (each tied tensor once), atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    full = gathered_state(model)
    sd = {k: v.detach().contiguous().cpu() for k, v in (full if full is not None else model.state_dict()).items()}
    # tied weights share storage: save each tensor once
    seen, uniq = {}, {}
    for k, v in sd.items():
        key = (v.data_ptr(), v.shape)
        if key in seen:
            continue
        seen[key] = k
        uniq[k] = v
    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".tmp", dir=folder)
    os.close(fd)
    save_file(uniq, tmp)
    fsync_tree(tmp)  # the weights are on disk (with the umask's mode) before train.json announces them
    os.replace(tmp, path)
    fsync_dir(folder)


def load_full_weights(model, path: Path):
    """Load the weights saved by :func:`save_full_weights` into ``model`` (in place; tied copies come back
    through the tie); returns ``model``."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(Path(path)), strict=False)
    return model


def export_pretrained(model, tokenizer, dst: Path) -> None:
    """A ``save_pretrained`` folder (config, safetensors, tokenizer) at ``dst``, loadable as ``hf:<dst>``."""
    dst = Path(dst)
    tmp = Path(tempfile.mkdtemp(prefix=".model.", dir=dst.parent))
    full = gathered_state(model)
    model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": full} if full is not None else {}))
    tokenizer.save_pretrained(tmp)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def save_adapter(model, dst: Path) -> None:
    """A PEFT model's adapter (``save_pretrained``, safetensors) as the folder ``dst``, atomically."""
    dst = Path(dst)
    folder = dst.parent
    tmp = make_temp_dir(folder, ".adapter.")
    full = gathered_state(model)  # a sharded training's gathered weights: PEFT takes the adapter's keys from it
    model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": full} if full is not None else {}))
    fsync_tree(tmp)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)
    fsync_dir(folder)


def load_adapter(model, src: Path):
    """``model`` (a copy of the base model: it becomes the PEFT model's base) with the adapter saved in ``src``."""
    return load_adapters(model, {"default": src})


def load_adapters(model, sources: dict[str, Path]):
    """``model`` (a copy of the base model) holding every adapter of ``sources`` (adapter name -> its saved folder)
    under its name, the first one active (a mixed-adapter group: :mod:`lorafair.lm.group`)."""
    from peft import PeftModel

    (first, src), *rest = sources.items()
    peft_model = PeftModel.from_pretrained(model, Path(src), adapter_name=first)
    for name, path in rest:
        peft_model.load_adapter(Path(path), adapter_name=name)
    return peft_model


def write_marker(marker: Path, record: dict) -> None:
    """Write the marker (``train.json``) that announces a trained variant, after its weights were saved: every
    save function here has fsynced them by the time it returns, so a reader (a resumed run, a report) never
    finds a marker before the weights it announces."""
    atomic_write_json(marker, record)


# ---------------------------------------------------------------------------------------- training state

def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The trainable parameters of ``model`` by name (a PEFT model: its adapter only, never the base)."""
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, sd: dict[str, torch.Tensor]) -> None:
    """Copy ``sd`` into ``model``'s trainable parameters in place (the optimizer keeps its references)."""
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(named) != set(sd):
        raise ValueError("checkpoint does not match the model's trainable parameters")
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(sd[n].to(p.device, p.dtype))


def rng_state() -> dict:
    import numpy as np

    name, keys, pos, has_gauss, cached = np.random.get_state()
    st = {"torch": torch.get_rng_state(), "python": random.getstate(),
          "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    import numpy as np

    torch.set_rng_state(st["torch"])
    random.setstate(st["python"])
    name, keys, pos, has_gauss, cached = st["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


class StepCheckpoint:
    """The resumable state of one training in ``root``: ``latest.json`` names the newest complete
    ``step-NNNNNNN/`` folder. A folder is written under a temporary name (``.step-….tmp``, which the run
    directory's clean-up removes), fsynced, renamed, and only then pointed to; older ones are removed.
    ``key`` ties the state to one training (the runner's variant fingerprint and the lr): a checkpoint
    of another training is ignored and removed.

    Under ``accelerate launch`` (DDP) every process writes its own RNG state and the main process the
    rest; a checkpoint of a different number of processes is not resumed."""

    def __init__(self, root: Path, key: str, every: Optional[int], log=None):
        self.root, self.key, self.every, self.log = Path(root), key, every, log

    def due(self, step: int, steps: int) -> bool:
        return bool(self.every) and step % self.every == 0 and step < steps

    def _info(self, msg, *args):
        if self.log:
            self.log.info(msg, *args)

    def save(self, acc, model, opt, sched, progress: dict) -> None:
        from safetensors.torch import save_file

        step = progress["step"]
        tmp = self.root / f".step-{step:07d}.tmp"
        if acc.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
        acc.wait_for_everyone()
        unwrapped = acc.unwrap_model(model)
        # per process: its RNG states and the gradients it accumulated towards the next optimiser step
        # (under DDP each process holds its own until they are synchronised)
        grads = {n: p.grad.detach().cpu().clone() for n, p in unwrapped.named_parameters()
                 if p.requires_grad and p.grad is not None}
        torch.save({"rng": rng_state(), "grads": grads}, tmp / f"rank-{acc.process_index}.pt")
        if acc.is_main_process:
            save_file(trainable_state(unwrapped), str(tmp / "trainable.safetensors"))
            torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp / "optimizer.pt")
            with open(tmp / "progress.json", "w", encoding="utf-8") as f:
                json.dump(progress | {"key": self.key}, f)
        acc.wait_for_everyone()
        if acc.is_main_process:
            fsync_tree(tmp)  # on disk before latest.json names it
            dst = self.root / f"step-{step:07d}"
            if dst.exists():
                shutil.rmtree(dst)
            os.replace(tmp, dst)
            fsync_dir(self.root)
            atomic_write_json(self.root / "latest.json", {"key": self.key, "step": step, "folder": dst.name,
                                                    "world_size": acc.num_processes})
            for old in self.root.glob("step-*"):
                if old.name != dst.name:
                    shutil.rmtree(old, ignore_errors=True)
            self._info("checkpoint: %s step %d", self.root, step)

    def load(self, acc) -> Optional[dict]:
        """The saved state of this training (tensors on CPU), or None when there is none to resume."""
        from safetensors.torch import load_file

        latest = _read_json(self.root / "latest.json")
        if not isinstance(latest, dict):
            return None
        if latest.get("key") != self.key:
            self._info("checkpoint in %s belongs to another training; not resumed", self.root)
            return None
        if latest.get("world_size") != acc.num_processes:
            self._info("checkpoint in %s was written by %s processes, this training has %d; not resumed",
                       self.root, latest.get("world_size"), acc.num_processes)
            return None
        d = self.root / str(latest.get("folder"))
        progress = _read_json(d / "progress.json")
        mine = d / f"rank-{acc.process_index}.pt"
        if not isinstance(progress, dict) or progress.get("key") != self.key or not mine.is_file():
            return None
        own = torch.load(mine, map_location="cpu", weights_only=True)
        return {"progress": progress, "params": load_file(str(d / "trainable.safetensors")), "grads": own["grads"],
                "optim": torch.load(d / "optimizer.pt", map_location="cpu", weights_only=True), "rng": own["rng"]}


def restore_training(acc, model, opt, sched, state: dict) -> None:
    """Put a :meth:`StepCheckpoint.load` state back into a prepared training (parameters, pending gradients,
    optimizer, scheduler, accelerate's accumulation step); the caller restores the RNG states once the data
    loader is back at its position."""
    unwrapped = acc.unwrap_model(model)
    load_trainable_state(unwrapped, state["params"])
    named = dict(unwrapped.named_parameters())
    for n, g in state["grads"].items():
        named[n].grad = g.to(named[n].device, named[n].dtype)
    opt.load_state_dict(state["optim"]["optimizer"])
    sched.load_state_dict(state["optim"]["scheduler"])
    acc.step = state["progress"]["acc_step"]


class LrCheckpoint:
    """``lr-<i>/`` of a variant's checkpoint folder: the step checkpoints of that lr's training and, in an lr
    grid, its finished result (``result.json``) and the best lr's trained parameters (``final.safetensors``)."""

    def __init__(self, root: Path, key: str):
        self.root, self.key = Path(root), key

    def steps(self, every: Optional[int], log=None) -> StepCheckpoint:
        """The step checkpoints of this lr's training."""
        return StepCheckpoint(self.root, self.key, every, log=log)

    def stale(self) -> bool:
        """True when the folder holds the state or result of another training than this one's key."""
        for name in ("latest.json", "result.json"):
            d = _read_json(self.root / name)
            if (self.root / name).exists() and not (isinstance(d, dict) and d.get("key") == self.key):
                return True
        return False

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def result(self) -> Optional[dict]:
        """This lr's recorded outcome (``{"key", "status": "ok", "result"}`` or ``{"key", "status": "failed",
        "diverged"}``) when it is this training's, else None."""
        done = _read_json(self.root / "result.json")
        return done if isinstance(done, dict) and done.get("key") == self.key else None

    def save_failed(self, step: int, steps: int, loss: float, what: str) -> None:
        """Record that this lr's training diverged (and drop its step checkpoints)."""
        atomic_write_json(self.root / "result.json", {"key": self.key, "status": "failed", "diverged": {
            "step": step, "steps": steps, "loss": str(loss), "what": what}})
        self.drop_steps()

    def save_result(self, result: dict, params: Optional[dict[str, torch.Tensor]] = None) -> None:
        """Record this lr's finished result; ``params``: its trained parameters, kept (``final.safetensors``)
        while it is the best lr of the grid. Its step checkpoints are not dropped here (see :meth:`drop_steps`)."""
        from safetensors.torch import save_file

        self.root.mkdir(parents=True, exist_ok=True)
        if params is not None:  # keep the best lr's trained parameters until the variant is saved
            tmp = self.root / ".final.safetensors.tmp"
            save_file(params, str(tmp))
            fsync_tree(tmp)
            os.replace(tmp, self.root / "final.safetensors")
            fsync_dir(self.root)
        atomic_write_json(self.root / "result.json", {"key": self.key, "status": "ok", "result": result})

    def final_state(self) -> dict[str, torch.Tensor]:
        """The trained parameters kept by :meth:`save_result`."""
        from safetensors.torch import load_file

        return load_file(str(self.root / "final.safetensors"))

    def drop_final(self) -> None:
        """Forget the kept parameters (another lr of the grid is better)."""
        (self.root / "final.safetensors").unlink(missing_ok=True)

    def drop_steps(self) -> None:
        """Remove the step checkpoints of a training that has finished (its result is kept instead)."""
        (self.root / "latest.json").unlink(missing_ok=True)
        for old in self.root.glob("step-*"):
            shutil.rmtree(old, ignore_errors=True)


class TrainingCheckpoint:
    """A variant's checkpoint folder (``RUN/<variant>-s<seed>/checkpoint/``): one :class:`LrCheckpoint` per
    learning rate of its grid; removed (:meth:`clear`) once the variant is saved."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def lr(self, index: int, key: str = "") -> LrCheckpoint:
        return LrCheckpoint(self.root / f"lr-{index}", key)

    def clear(self) -> None:
        if self.root.is_dir():
            shutil.rmtree(self.root, ignore_errors=True)
