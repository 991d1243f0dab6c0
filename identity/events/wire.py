"""A batch of change events as the app receives it (Standard Webhooks 1.0): one POST of
`{"type": "batch", "timestamp", "data": [event, ...]}`, signed with each of the client's secrets
in force, under a `webhook-id` that names the batch, so a batch sent again is recognised.

Each event carries the SCIM id of its resource and the resource as a client of the app reads it
when the batch is sent (docs/events.md), read through `Sources`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx2 as httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks import Webhook

from identity.events.outbox import EventType
from identity.models import OidcClient, Tenant

SEND_DEADLINE_SECONDS = 10.0
Resource = dict[str, Any]
_USERS = (EventType.USER_CREATED, EventType.USER_UPDATED, EventType.USER_DEACTIVATED)
_GROUPS = (EventType.GROUP_CREATED, EventType.GROUP_UPDATED)


@dataclass(frozen=True)
class Sources:
    """What delivery reads through the parts above it, handed in by the worker
    (`identity.worker.event_sources`): the directory and `identity.access` record events, so
    this package lies below them and cannot import the SCIM resources or the provider."""

    users: Callable[[AsyncConnection, str, str, Sequence[str]], Awaitable[dict[str, Resource]]]
    """(tenant, app, user names): the SCIM Users a client of the app reads now, by user name."""
    groups: Callable[[AsyncConnection, str, Sequence[str]], Awaitable[dict[str, Resource]]]
    """(tenant, org codes): the SCIM Groups, by org code."""
    user_id: Callable[[str], str]
    group_id: Callable[[str], str]
    secrets: Callable[[OidcClient, datetime], list[str]]
    """The client's events secrets in force: the current one, then the previous one."""
    visible: Callable[[AsyncConnection, str, str], Awaitable[bool]]
    """(tenant, app): whether the app may see the tenant now."""


def message_id(tenant_id: str, first: int, last: int) -> str:
    """The batch's `webhook-id`: the same for every attempt of the batch, another for any
    other batch of any tenant."""
    return f"msg_{_quoted(tenant_id)}_{first}_{last}"


def _quoted(tenant_id: str) -> str:
    """The tenant id as a header value may carry it: every byte but letters, digits and
    `_.-~` percent-encoded."""
    return quote(tenant_id, safe="")


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


async def render(
    conn: AsyncConnection, sources: Sources, tenant_id: str, app_id: str, rows: Sequence[Any]
) -> list[dict[str, Any]]:
    """The events of `rows` (of `directory_events`, of one tenant) as a client of `app_id`
    receives them: each with the SCIM id of its resource and the resource as the client reads
    it now (None once it is deleted, or no longer the app's)."""
    names = sorted({r.resource_key for r in rows if r.type in _USERS})
    codes = sorted({r.resource_key for r in rows if r.type in _GROUPS})
    users = await sources.users(conn, tenant_id, app_id, names) if names else {}
    groups = await sources.groups(conn, tenant_id, codes) if codes else {}
    code = await conn.scalar(select(Tenant.tenant_code).where(Tenant.tenant_id == tenant_id))

    def user_name(name: str) -> str:  # as the SCIM User's userName spells it
        return f"{name}@{code}"

    def data(r: Any) -> dict[str, Any]:
        key, extra = r.resource_key, dict(r.data or {})
        if r.type == EventType.SESSION_ENDED:
            name = str(extra.pop("user_name"))
            return {"id": sources.user_id(name), "userName": user_name(name), "sid": key, **extra}
        if r.type.startswith("directory.user."):
            return {
                "id": sources.user_id(key),
                "userName": user_name(key),
                "resource": users.get(key),
            }
        return {"id": sources.group_id(key), **extra, "resource": groups.get(key)}

    return [
        {
            "id": f"evt_{_quoted(r.tenant_id)}_{r.cursor}",
            "type": r.type,
            "timestamp": _iso(r.created_at),
            "tenant_id": r.tenant_id,
            "cursor": r.cursor,
            "data": data(r),
        }
        for r in rows
    ]


async def post(
    http: httpx.AsyncClient,
    uri: str,
    message_id: str,
    secrets: list[str],
    events: list[dict[str, Any]],
) -> str | None:
    """None on a 2xx answer, else what went wrong (never the body). One deadline for all of
    it, well inside the lease. Signed per Standard Webhooks: `{id}.{timestamp}.{body}`, one
    signature per secret in force, space-separated."""
    sent_at = datetime.now(UTC)
    envelope = {"type": "batch", "timestamp": _iso(sent_at.replace(tzinfo=None)), "data": events}
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
    signatures = " ".join(Webhook(secret).sign(message_id, sent_at, body) for secret in secrets)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "cache-control": "no-store",
    }
    try:
        async with asyncio.timeout(SEND_DEADLINE_SECONDS):
            response = await http.post(uri, content=body, headers=headers)
    except TimeoutError:
        return "timeout"
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
