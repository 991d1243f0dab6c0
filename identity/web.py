"""What every surface's request reading shares.

A control character (C0 or DEL) is refused wherever a request's text is read: none has a
meaning in a parameter, and PostgreSQL refuses a NUL in text outright, so letting one through
turns bad input into a 500."""

from __future__ import annotations

import re

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def holds_control(*values: str | None) -> bool:
    """Whether any of `values` holds a control character (None and empty hold none)."""
    return any(value and CONTROL.search(value) for value in values)
