"""User-facing errors: one line, naming the field, the value and what is allowed; exit code 2."""

from __future__ import annotations

import signal


class UserError(Exception):
    """Bad input from the user. The CLI prints ``error: <message>`` and exits with code 2."""

    exit_code = 2

    def __init__(self, field: str | None, value: object = None, allowed: str | None = None, *, message: str | None = None):
        self.field = field
        self.value = value
        self.allowed = allowed
        if message is None:
            parts = []
            if field:
                parts.append(f"{field}={value!r}" if value is not None else field)
            if allowed:
                parts.append(f"expected {allowed}")
            message = ": ".join(parts) if len(parts) < 2 else f"{parts[0]}: {parts[1]}"
        super().__init__(message)

    @classmethod
    def plain(cls, message: str) -> "UserError":
        return cls(None, message=message)

    @classmethod
    def from_validation(cls, e, prefix: str = "") -> "UserError":
        """The first error of a pydantic ``ValidationError`` as one line naming the full field path
        (``prefix.loc``): unknown key, missing field, or ``field=value: what is wrong``."""
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"] if not _union_tag(x))
        field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            return cls.plain(f"{field}: unknown key (check spelling; see `lorafair run --help` and README)")
        if err["type"] == "missing":
            return cls.plain(f"{field}: required field is missing")
        value = err.get("input")
        shown = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 80 else type(value).__name__
        return cls.plain(f"{field}={shown}: {msg}")


def signal_exit_code(signum: int) -> int:
    """The exit code of a command stopped by signal ``signum``, in every phase of it, as a shell reports a process
    that signal ended: 128 + signum (130 for SIGINT / Ctrl-C, 143 for SIGTERM)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


_TAGS = ("float", "int", "str", "bool", "none", "json-or-python[json=list[", "is-instance[")
_TAG_PREFIXES = ("function-", "list[", "dict[", "literal[", "union[", "nullable[", "tagged-union[", "lax-or-strict[",
                 "chain[", "constrained-")


def _union_tag(x) -> bool:
    """pydantic puts the member of a union it tried into ``loc`` (``alpha.float``): not a field the user wrote."""
    return isinstance(x, str) and (x in _TAGS or x.startswith(_TAG_PREFIXES))
