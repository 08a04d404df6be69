"""A tiny generic registry: one instance per kind of plug-in (models, datasets, studies, scorers)."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from lorafair.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a plug-in. ``kind`` appears in error messages (e.g. "study")."""

    def __init__(self, kind: str, field: str):
        self.kind = kind
        self.field = field  # the config field users set, for error messages
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

    def get(self, name: str) -> T:
        if name not in self._items:
            raise UserError(self.field, name, f"one of {', '.join(sorted(self._items))}")
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return sorted(self._items)

    def help(self, name: str) -> str:
        return self._help.get(name, "")

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
