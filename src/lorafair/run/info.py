"""``run_info.json``: how the numbers were obtained — model, hardware, library versions, wall time, and the
time and peak memory of each phase of the run (:class:`PhaseMeter`)."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Iterator

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _peak_rss_kb() -> int | None:
    """This process's peak resident set size (kB): Linux's VmHWM (resettable), else getrusage's lifetime peak."""
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # kB on Linux
    except (OSError, ValueError):
        return None


def _reset_peak_rss() -> bool:
    """Restart the peak-RSS count at the current RSS (Linux >= 4.0: "5" > /proc/self/clear_refs)."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


class PhaseMeter:
    """Wall time and peak memory per phase of a run: ``with meter.phase("train"): ...``. Memory: the peak
    resident set size of the process during the phase (``peak_rss_mb``; where the peak cannot be reset it is
    the peak since the process started, and ``rss_scope`` says "process"), and on a CUDA device the peak
    memory allocated and reserved by torch (``peak_gpu_allocated_mb``, ``peak_gpu_reserved_mb``)."""

    def __init__(self, device=None):
        self.device = device
        self.phases: dict[str, dict] = {}

    def _cuda(self) -> bool:
        import torch

        return getattr(self.device, "type", "") == "cuda" and torch.cuda.is_available()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        import torch

        scoped = _reset_peak_rss()
        if self._cuda():
            torch.cuda.reset_peak_memory_stats(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            rec: dict = {"wall_s": round(time.perf_counter() - t0, 2)}
            if (kb := _peak_rss_kb()) is not None:
                rec["peak_rss_mb"] = round(kb / 1024, 1)
                rec["rss_scope"] = "phase" if scoped else "process"
            if self._cuda():
                rec["peak_gpu_allocated_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
                rec["peak_gpu_reserved_mb"] = round(torch.cuda.max_memory_reserved(self.device) / 2**20, 1)
            self.phases[name] = rec


def library_versions() -> dict[str, str]:
    out = {}
    for pkg in ("lorafair", "torch", "transformers", "peft", "accelerate", "safetensors", "fairlearn", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def hardware(device) -> dict:
    import torch

    hw = {"device": str(device), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
          "platform": platform.platform(), "python": platform.python_version()}
    if getattr(device, "type", "") == "cuda":
        hw["gpu"] = torch.cuda.get_device_name(device)
    return hw


def run_info(cfg, device, wall_s: float, train_info: dict, phases: dict | None = None,
             eval_precision: dict | None = None, mixed_adapters: dict | None = None) -> dict:
    return {
        "name": cfg.name,
        "recipe": cfg.name,
        "model": cfg.model.source,
        "data": cfg.data.train.source if cfg.data is not None else None,
        "seeds": cfg.seeds,
        "studies": list(cfg.studies),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_time_s": round(wall_s, 2),
        "hardware": hardware(device),
        "versions": library_versions(),
        "training": {k: {kk: v.get(kk) for kk in ("lr", "steps", "eval_loss", "tokens_per_s", "wall_s", "trainable_params",
                                                  "precision", "attention")}
                     for k, v in train_info.items()},
        "phases": phases or {},
        "eval_precision": eval_precision or {},  # study -> {score, sample} -> bf16 | fp32 (eval.precision resolved)
        # seed -> {variants, studies} evaluated together in mixed-adapter batches by this run (eval.mixed_adapters)
        "mixed_adapters": mixed_adapters or {},
    }
