"""Find and validate studies named in a config (the study registry finds every study package on the first lookup)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from lorafair.errors import UserError
from lorafair.studies.base import STUDIES


def study_class(name: str) -> type:
    """The registered study class ``name`` (UserError naming ``studies`` and the known names)."""
    return STUDIES.get(name)


def available_studies() -> list[str]:
    return STUDIES.names()


def validate_studies(raw: dict[str, Any]) -> dict[str, Any]:
    """Return name -> validated study Config instance; UserError naming ``studies.<name>.<field>``."""
    out: dict[str, Any] = {}
    for name, fields in (raw or {}).items():
        cls = study_class(name)
        if hasattr(fields, "model_dump"):  # already validated
            out[name] = fields
            continue
        prefix = f"studies.{name}"
        try:
            out[name] = cls.Config.model_validate(fields or {})
            _check_names(out[name], prefix)
        except ValidationError as e:
            raise UserError.from_validation(e, prefix=prefix) from None
        except UserError as e:  # raised by a study's validator or a registry with a bare field name
            if e.field and not e.field.startswith(prefix):
                field = f"{prefix}.{e.field.removeprefix('studies.')}"
                msg = str(e)
                raise UserError(field, e.value, e.allowed, message=field + msg[len(e.field):] if msg.startswith(e.field) else msg) from None
            raise
    return out


def _check_names(cfg: Any, prefix: str) -> None:
    """Plug-in names of a study config (its data specs' registered dataset names, its ``scorer``), looked up
    now, so a misspelt one is reported as ``studies.<name>.<field>`` before any training."""
    from lorafair.data.registry import DataSpec

    for key, value in cfg:
        if isinstance(value, DataSpec):
            from lorafair.data.load import check_dataset_name

            check_dataset_name(value, f"{prefix}.{key}")
        elif key == "scorer" and isinstance(value, str):
            from lorafair.scorers import SCORERS

            if value.partition(":")[0] not in SCORERS:
                raise UserError(f"{prefix}.{key}", value,
                                f"a scorer NAME[:ARG] with NAME one of {', '.join(SCORERS.names())} (see `lorafair scorers`)")
