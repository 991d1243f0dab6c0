"""What the admin API and console read from a request, checked before any use, so crafted input
is a `bad_request` (400, in the surface's own shape) and never reaches the database or the
clock: no control character anywhere (PostgreSQL cannot take a NUL in a text parameter, and
nothing the console shows or looks up has one), numbers only as plain ASCII digits within
their range (Python's `int()` also reads `²` and `٣`, and a date cannot go a billion seconds
ahead), and each `tenant`-like parameter at most once (RFC 6749 §3.1 refuses repeated
parameters for the same reason: which one would a reader take?)."""

from __future__ import annotations

import re

from fastapi import Request

from identity.admin.errors import BadRequest
from identity.web import holds_control

_DIGITS = re.compile(r"-?[0-9]{1,18}")
TENANT_NAMES = frozenset({"tenant", "tenantid", "tenantcode"})
"""Parameter names that name a tenant, compared without case, `_` or `-` (`tenant_id`,
`tenantId` and `Tenant-ID` are one parameter)."""


def refuse_control_characters(*values: str) -> None:
    if holds_control(*values):
        raise BadRequest("a parameter holds a control character")


async def clean_input(request: Request) -> None:
    """Every admin route, first: the query's names and values and the path's segments."""
    query = [part for item in request.query_params.multi_items() for part in item]
    refuse_control_characters(*query, *map(str, request.path_params.values()))


def number(name: str, sent: str, low: int, high: int) -> int:
    """`sent` as an integer from `low` to `high`, else a 400 naming the parameter."""
    if not _DIGITS.fullmatch(sent) or not low <= int(sent) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(sent)


def tenant_references(request: Request) -> list[str]:
    """The values of the query's `tenant`-like parameters; the same one twice is a 400."""
    seen: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        key = name.lower().replace("_", "").replace("-", "")
        if key not in TENANT_NAMES:
            continue
        if key in seen:
            raise BadRequest("a tenant parameter is given more than once")
        seen[key] = value
    return list(seen.values())
