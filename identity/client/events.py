"""Receiving identity's directory change events (Standard Webhooks, docs/events.md).

identity POSTs a tenant's events to the app's events URI in batches, in cursor order, at least
once: a batch that got no 2xx answer is sent again, whole, with the same `webhook-id`.
`EventReceiver.receive` checks the signature with the `standardwebhooks` library (any of the
secrets it holds, so a rotation needs no gap), drops what it has already handed over, and
hands the rest to the app as `DirectoryEvent`s, in order.

What was handed over is remembered as the last cursor per tenant: a tenant's cursors only
grow, so an event at or below it is a repeat. `CursorStore` keeps them; the default keeps them
in this process's memory, so after a restart a resent batch is handed over again. An app that
must never see an event twice passes a store of its own that writes to its database, in the
same transaction as what the events change.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from identity.client.errors import TokenRejected

USER_EVENTS = ("created", "updated", "deactivated", "deleted")


@dataclass(frozen=True)
class DirectoryEvent:
    """One change: `type` is `directory.user.created|updated|deactivated|deleted`,
    `directory.group.created|updated|deleted` or `access.session_ended`. `resource` is the SCIM
    resource as it was when the event was sent (None once deleted); `resource_id` its SCIM id."""

    id: str
    type: str
    tenant_id: str
    cursor: int
    timestamp: str
    resource_id: str | None
    resource: dict[str, Any] | None
    data: dict[str, Any] = field(default_factory=dict)


class CursorStore(Protocol):
    def last(self, tenant_id: str) -> int:
        """The last cursor handed over for the tenant; 0 when none."""

    def advance(self, tenant_id: str, cursor: int) -> None:
        """Remember that events up to `cursor` were handed over."""


class MemoryCursors:
    """The default `CursorStore`: a dict in this process."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def last(self, tenant_id: str) -> int:
        with self._lock:
            return self._last.get(tenant_id, 0)

    def advance(self, tenant_id: str, cursor: int) -> None:
        with self._lock:
            self._last[tenant_id] = max(cursor, self._last.get(tenant_id, 0))


EventHandler = Callable[[list[DirectoryEvent]], Awaitable[None] | None]


class EventReceiver:
    """Verifies, de-duplicates and parses the batches POSTed to the app's events URI."""

    def __init__(self, secrets: str | Sequence[str], cursors: CursorStore | None = None) -> None:
        listed = [secrets] if isinstance(secrets, str) else list(secrets)
        if not listed:
            raise ValueError("an EventReceiver needs the events secret (whsec_…)")
        self._hooks = [Webhook(secret) for secret in listed]
        self.cursors = cursors if cursors is not None else MemoryCursors()

    def verify(self, body: bytes, headers: Mapping[str, str]) -> Any:
        """The body's JSON once a signature by one of the secrets checks out, within the
        library's five minutes of the `webhook-timestamp`; else `TokenRejected`."""
        plain = {k.lower(): v for k, v in headers.items()}
        for hook in self._hooks:
            try:
                return hook.verify(body, plain)
            except WebhookVerificationError as exc:
                problem = str(exc)
        raise TokenRejected("bad_signature", problem)

    def parse(self, payload: Any) -> list[DirectoryEvent]:
        """The batch's events, in order; `TokenRejected("malformed")` for another shape."""
        events = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(events, list):
            raise TokenRejected("malformed", "the body is not a batch of events")
        try:
            return [_event(item) for item in events]
        except (KeyError, TypeError, ValueError) as exc:
            raise TokenRejected("malformed", f"an event lacks {exc}") from None

    async def receive(
        self, body: bytes, headers: Mapping[str, str], handler: EventHandler
    ) -> list[DirectoryEvent]:
        """Verify, drop repeats, call `handler(events)` with the new ones (not when none are
        new), then remember them; returns what was handed over. If the handler raises, nothing
        is remembered and the error goes up: answer non-2xx and identity sends the batch
        again."""
        fresh = [e for e in self.parse(self.verify(body, headers)) if self._new(e)]
        if fresh:
            outcome = handler(fresh)
            if inspect.isawaitable(outcome):
                await outcome
            for event in fresh:
                self.cursors.advance(event.tenant_id, event.cursor)
        return fresh

    def _new(self, event: DirectoryEvent) -> bool:
        return event.cursor > self.cursors.last(event.tenant_id)


def _event(item: dict[str, Any]) -> DirectoryEvent:
    data = dict(item.get("data") or {})
    resource = data.pop("resource", None)
    return DirectoryEvent(
        id=str(item["id"]),
        type=str(item["type"]),
        tenant_id=str(item["tenant_id"]),
        cursor=int(item["cursor"]),
        timestamp=str(item["timestamp"]),
        resource_id=data.pop("id", None),
        resource=resource if isinstance(resource, dict) else None,
        data=data,
    )
