"""Find and validate studies named in a config (imports ``lorafair.studies.<name>`` on demand)."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import ValidationError

from lorafair.errors import UserError
from lorafair.studies.base import STUDIES

KNOWN = ("heldout", "toxicity", "shift", "stereotypes", "classification", "decisions")


def study_class(name: str) -> type:
    if name not in STUDIES:
        try:
            importlib.import_module(f"lorafair.studies.{name}")
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith(f"lorafair.studies.{name}"):
                raise UserError("studies", name, f"one of {', '.join(available_studies())}") from None
            raise
    return STUDIES.get(name)


def available_studies() -> list[str]:
    names = []
    for n in KNOWN:
        try:
            study_class(n)
            names.append(n)
        except (UserError, ImportError):
            pass
    return names


def validate_studies(raw: dict[str, Any]) -> dict[str, Any]:
    """Return name -> validated study Config instance; UserError naming ``studies.<name>.<field>``."""
    out: dict[str, Any] = {}
    for name, fields in (raw or {}).items():
        cls = study_class(name)
        if hasattr(fields, "model_dump"):  # already validated
            out[name] = fields
            continue
        try:
            out[name] = cls.Config.model_validate(fields or {})
        except ValidationError as e:
            from lorafair.config.load import first_error

            raise first_error(e, prefix=f"studies.{name}") from None
    return out
