"""User-facing errors: one line, naming the field, the value and what is allowed; exit code 2."""

from __future__ import annotations


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
