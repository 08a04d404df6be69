"""Load a recipe (shipped name or YAML path), apply ``--set key.path=value`` overrides, validate."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lorafair.config.schema import RunConfig
from lorafair.errors import UserError


def recipe_names() -> list[str]:
    d = resources.files("lorafair") / "recipes"
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".yaml"))


def recipe_text(name: str) -> str:
    return (resources.files("lorafair") / "recipes" / f"{name}.yaml").read_text(encoding="utf-8")


def read_recipe(recipe: str) -> tuple[dict, str]:
    """Return (raw dict, origin) for a shipped recipe name or a YAML path."""
    path = Path(recipe)
    if recipe.endswith((".yaml", ".yml")) or path.exists():
        if not path.is_file():
            raise UserError("recipe", recipe, "a shipped recipe name (see `lorafair recipes`) or an existing YAML file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError("recipe", recipe, "a UTF-8 text file") from None
        origin = str(path)
    elif recipe in recipe_names():
        text, origin = recipe_text(recipe), f"recipe:{recipe}"
    else:
        raise UserError("recipe", recipe, f"a YAML file or one of {', '.join(recipe_names())}")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError.plain(f"recipe {origin}: invalid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError("recipe", origin, "a YAML mapping (key: value) at the top level")
    if "name" not in raw and path.suffix in (".yaml", ".yml"):
        raw["name"] = path.stem
    return raw, origin


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError("--set", item, "key.path=value")
    key, _, value = item.partition("=")
    keys = [k for k in key.strip().split(".")]
    if not key.strip() or any(not k for k in keys):
        raise UserError("--set", item, "key.path=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return keys, parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        keys, value = parse_override(item)
        node = raw
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                if k in node and node[k] is not None:
                    raise UserError("--set", item, f"{k} is not a section")
                node[k] = {}
            node = node[k]
        node[keys[-1]] = value
    return raw


_TAGS = ("float", "int", "str", "bool", "none", "json-or-python[json=list[", "is-instance[")
_TAG_PREFIXES = ("function-", "list[", "dict[", "literal[", "union[", "nullable[", "tagged-union[", "lax-or-strict[",
                 "chain[", "constrained-")


def _union_tag(x) -> bool:
    """pydantic puts the member of a union it tried into ``loc`` (``alpha.float``): not a field the user wrote."""
    return isinstance(x, str) and (x in _TAGS or x.startswith(_TAG_PREFIXES))


def first_error(e: ValidationError, prefix: str = "") -> UserError:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"] if not _union_tag(x))
    field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return UserError.plain(f"{field}: unknown key (check spelling; see `lorafair run --help` and README)")
    if err["type"] == "missing":
        return UserError.plain(f"{field}: required field is missing")
    value = err.get("input")
    shown = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 80 else type(value).__name__
    return UserError.plain(f"{field}={shown}: {msg}")


def load_config(recipe: str, overrides: list[str] | None = None) -> RunConfig:
    raw, _ = read_recipe(recipe)
    raw = apply_overrides(raw, overrides or [])
    return validate_config(raw)


def validate_config(raw: dict) -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise first_error(e) from None


def dump_config(cfg: RunConfig) -> str:
    data = cfg.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
