"""``run_info.json``: how the numbers were obtained — model, hardware, library versions, wall time."""

from __future__ import annotations

import os
import platform
import time
from importlib.metadata import PackageNotFoundError, version


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


def run_info(cfg, device, wall_s: float, train_info: dict) -> dict:
    return {
        "name": cfg.name,
        "recipe": cfg.name,
        "model": cfg.model.source,
        "data": cfg.data.train.source,
        "seeds": cfg.seeds,
        "studies": list(cfg.studies),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_time_s": round(wall_s, 2),
        "hardware": hardware(device),
        "versions": library_versions(),
        "training": {k: {kk: v.get(kk) for kk in ("lr", "steps", "eval_loss", "tokens_per_s", "wall_s", "trainable_params")}
                     for k, v in train_info.items()},
    }
