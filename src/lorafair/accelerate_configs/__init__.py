"""``accelerate`` config files shipped for multi-GPU training of one variant (``--executor-opt
accelerate_config=NAME``): ``ddp``, ``fsdp`` (FSDP2, full state dict at save), ``zero2``, ``zero3``
(DeepSpeed). A path to your own ``accelerate config`` file works too."""

from __future__ import annotations

from pathlib import Path

from lorafair.errors import UserError

FOLDER = Path(__file__).parent


def names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def config_path(name_or_path: str) -> Path:
    """The shipped config ``name`` (``ddp``, ``fsdp``, ``zero2``, ``zero3``) or an existing file."""
    shipped = FOLDER / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p.resolve()
    raise UserError("--executor-opt accelerate_config", name_or_path,
                    f"one of {', '.join(names())} or an accelerate config file")
