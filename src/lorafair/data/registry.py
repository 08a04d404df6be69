"""The dataset contract.

A builder registered with ``@register_dataset("name")`` turns a :class:`DataSpec` into a list of
records (dicts). A record has either ``text`` (loss on the whole text) or ``prompt`` and
``completion`` (loss on the completion only), plus any metadata (``group``, ``template`` …).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lorafair.registry import Registry


class DataSpec(BaseModel):
    """Where a dataset comes from and how to read it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: str = Field(
        description='A registered dataset name (see `lorafair datasets`), or "jsonl:PATH", "csv:PATH", '
        '"parquet:PATH", or "hf:DATASET_ID[:CONFIG]" (Hugging Face datasets, online only).'
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Builder-specific options (see the dataset's help).")
    limit: Optional[int] = Field(default=None, gt=0, description="Keep at most this many records (after a seeded shuffle).")
    split: Optional[str] = Field(default=None, description="Split to read for hf: sources (default 'train').")
    text_field: str = Field(default="text", description="Field holding the text, for file and hf sources.")
    prompt_field: str = Field(default="prompt", description="Field holding the prompt (prompt/completion data).")
    completion_field: str = Field(default="completion", description="Field holding the completion.")

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        """The form of the source (kind, an existing regular non-empty file, parquet engine, `datasets`), checked
        before anything is read or written. A registered name is looked up when the data is loaded."""
        from lorafair.data.files import source_problem

        problem = source_problem(v)
        if problem:
            raise ValueError(f"expected {problem}")
        return v


@dataclass
class DataContext:
    seed: int = 0
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("lorafair"))
    progress: bool = False
    cache_dir: Optional[Path] = None
    # Returns (model, tokenizer) of the base model, loaded lazily by the runner (for builders that sample it).
    base_model: Optional[Callable[[], tuple[Any, Any]]] = None
    field_name: str = "data"  # the config path of this spec, for error messages


DATASETS: Registry[Callable[[DataSpec, DataContext], list[dict]]] = Registry("dataset", "data.source", plugins=("lorafair.data", "lorafair.studies"))


def register_dataset(name: str, help: str = ""):
    """Decorator: ``@register_dataset("bold-wiki", help="one line")`` on ``builder(spec, ctx) -> list[dict]``."""
    return DATASETS.register(name, help)
