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


MAX_RECIPE_BYTES = 10_000_000      # a recipe file larger than this is not a recipe
MAX_YAML_NODES = 100_000           # scalars, lists and mappings after alias expansion
MAX_YAML_CHARS = 10_000_000        # characters of scalars after alias expansion
MAX_YAML_DEPTH = 100               # nesting of lists/mappings


class YAMLLimit(Exception):
    """A YAML document that expands beyond the limits (alias bomb), is recursive or nested too deeply."""


def _expansion(root) -> tuple[int, int, int]:
    """(nodes, scalar characters, depth) of a composed YAML node graph as it will be constructed, each alias
    counted at its full expanded size (memoized per node, so a few-KB alias bomb costs a few hundred steps
    here). Iterative (no recursion); YAMLLimit for a recursive alias or a size beyond the limits."""
    sizes: dict[int, tuple[int, int, int]] = {}
    active: set[int] = set()

    def children(node):
        if isinstance(node, yaml.MappingNode):
            return [x for pair in node.value for x in pair]
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return []

    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            n, c, d = 1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0, 0
            for ch in children(node):
                cn, cc, cd = sizes[id(ch)]
                n, c, d = n + cn, c + cc, max(d, cd)
            d += 1
            active.discard(key)
            sizes[key] = (n, c, d)
            if n > MAX_YAML_NODES or c > MAX_YAML_CHARS:
                raise YAMLLimit(f"at most {MAX_YAML_NODES} values and {MAX_YAML_CHARS} characters once its aliases are "
                                f"expanded (it expands to at least {n} values and {c} characters: an alias bomb?)")
            if d > MAX_YAML_DEPTH:
                raise YAMLLimit(f"lists and mappings nested at most {MAX_YAML_DEPTH} deep")
            continue
        if key in sizes:
            continue
        if key in active:
            raise YAMLLimit("no recursive aliases (an alias refers to a node that contains it)")
        active.add(key)
        stack.append((node, True))
        for ch in children(node):
            if id(ch) in active:
                raise YAMLLimit("no recursive aliases (an alias refers to a node that contains it)")
            if id(ch) not in sizes:
                stack.append((ch, False))
    return sizes[id(root)]


def safe_load_limited(text: str):
    """``yaml.safe_load`` that refuses, before constructing anything, documents whose aliases expand beyond
    :data:`MAX_YAML_NODES` values or :data:`MAX_YAML_CHARS` characters ("billion laughs"), recursive aliases and
    nesting deeper than :data:`MAX_YAML_DEPTH` (YAMLLimit); yaml.YAMLError for invalid YAML."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YAMLLimit(f"lists and mappings nested at most {MAX_YAML_DEPTH} deep") from None
        if node is None:
            return None
        _expansion(node)
        try:
            return loader.construct_document(node)
        except RecursionError:
            raise YAMLLimit(f"lists and mappings nested at most {MAX_YAML_DEPTH} deep") from None
    finally:
        loader.dispose()


def _default_name(stem: str) -> str | None:
    """A valid run name from a recipe's file name: accents dropped, other characters replaced by '-'."""
    import re
    import unicodedata

    from lorafair.config.schema import NAME_RE

    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", ascii_stem).lstrip("._+-")[:100]
    return name if name and re.match(NAME_RE, name) else None


def read_recipe(recipe: str) -> tuple[dict, str]:
    """Return (raw dict, origin) for a shipped recipe name or a YAML path."""
    path = Path(recipe)
    if recipe.endswith((".yaml", ".yml")) or path.exists():
        if not path.is_file():
            raise UserError("recipe", recipe, "a shipped recipe name (see `lorafair recipes`) or an existing YAML file"
                            + (" (it is a directory)" if path.is_dir() else ""))
        try:
            size = path.stat().st_size
            if size > MAX_RECIPE_BYTES:
                raise UserError("recipe", recipe, f"a YAML recipe of at most {MAX_RECIPE_BYTES} bytes (it has {size})")
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UserError("recipe", recipe, "a UTF-8 text file") from None
        except OSError as e:
            raise UserError("recipe", recipe, f"a readable YAML file ({e.strerror or type(e).__name__})") from None
        origin = str(path)
    elif recipe in recipe_names():
        text, origin = recipe_text(recipe), f"recipe:{recipe}"
    else:
        raise UserError("recipe", recipe, f"a YAML file or one of {', '.join(recipe_names())}")
    if "\x00" in text:
        raise UserError("recipe", origin, "a YAML text file (it has a NUL byte: a binary file?)")
    try:
        raw = safe_load_limited(text)
    except YAMLLimit as e:
        raise UserError("recipe", origin, f"a recipe with {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError.plain(f"recipe {origin}: invalid YAML{where}: {problem}") from None
    except ValueError as e:  # a value PyYAML cannot build, e.g. an integer of more than 4300 digits
        raise UserError.plain(f"recipe {origin}: invalid YAML: {str(e).split(':')[0]}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError("recipe", origin, "a YAML mapping (key: value) at the top level")
    if "name" not in raw and path.suffix in (".yaml", ".yml"):
        name = _default_name(path.stem)
        if name:
            raw["name"] = name
    return raw, origin


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError("--set", item, "key.path=value")
    key, _, value = item.partition("=")
    keys = [k for k in key.strip().split(".")]
    if not key.strip() or any(not k for k in keys):
        raise UserError("--set", item, "key.path=value")
    try:
        parsed = safe_load_limited(value) if value.strip() else ""
    except YAMLLimit as e:
        raise UserError("--set", item, f"a value with {e}") from None
    except (yaml.YAMLError, ValueError):
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


def load_config(recipe: str, overrides: list[str] | None = None) -> RunConfig:
    raw, _ = read_recipe(recipe)
    raw = apply_overrides(raw, overrides or [])
    return validate_config(raw)


def validate_config(raw: dict) -> RunConfig:
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise UserError.from_validation(e) from None


def dump_config(cfg: RunConfig) -> str:
    data = cfg.model_dump(mode="json")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
