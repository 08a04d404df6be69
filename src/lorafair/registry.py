"""A tiny generic registry: one instance per kind of plug-in (models, datasets, studies, scorers).

Plug-ins are found one way: a registry names the packages that hold its plug-ins (``plugins``), and
the first lookup imports every module directly inside them (``pkgutil.iter_modules``, as the CLI finds
its commands), whose decorators register the plug-ins. Nothing is imported by a hard-coded list, and
an import error in a plug-in module is raised, never skipped.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

from lorafair.errors import UserError

T = TypeVar("T")


def import_submodules(package: str) -> list[str]:
    """Import ``package`` and every module and package directly inside it; their names, sorted."""
    pkg = importlib.import_module(package)
    names = []
    for info in sorted(pkgutil.iter_modules(getattr(pkg, "__path__", [])), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
            names.append(info.name)
    return names


class Registry(Generic[T]):
    """Maps a name to a plug-in. ``kind`` appears in error messages (e.g. "study"); ``plugins`` are the
    packages whose modules register into it (imported on the first lookup)."""

    def __init__(self, kind: str, field: str, plugins: tuple[str, ...] = ()):
        self.kind = kind
        self.field = field  # the config field users set, for error messages
        self.plugins = tuple(plugins)
        self._discovered = not self.plugins
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            doc = help or (getattr(obj, "__doc__", None) or "").strip().splitlines()[0:1]
            self._help[name] = doc if isinstance(doc, str) else (doc[0] if doc else "")
            return obj

        return deco

    def discover(self) -> None:
        """Import the plug-in packages once (a no-op afterwards)."""
        if self._discovered:
            return
        self._discovered = True
        try:
            for package in self.plugins:
                import_submodules(package)
        except BaseException:
            self._discovered = False
            raise

    def get(self, name: str) -> T:
        if name not in self._items:
            self.discover()
        if name not in self._items:
            raise UserError(self.field, name, f"one of {', '.join(self.names())}")
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        if name not in self._items:
            self.discover()
        return name in self._items

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def help(self, name: str) -> str:
        self.discover()
        return self._help.get(name, "")

    def ordered(self) -> list[str]:
        """Names in registration order (``names()`` is sorted)."""
        self.discover()
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
