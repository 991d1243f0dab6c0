"""An app's change-events endpoint, served for real (uvicorn, in the test's event loop), that
checks every request with the `standardwebhooks` library as an app would; an app registered to
receive the events there; and the worker's delivery run until nothing is left to send."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx2 as httpx
from standardwebhooks import Webhook, WebhookVerificationError

from identity.crypto import Cipher
from identity.db import Database
from identity.events import delivery
from identity.provider import clients
from identity.settings import Settings
from identity.worker import event_sources
from tests.helpers.admin_rows import APP
from tests.helpers.marketplace_client import SECRET_KEY
from tests.helpers.servers import serving_here


@dataclass(frozen=True)
class Delivery:
    """One request the receiver accepted."""

    webhook_id: str
    signatures: list[str]
    body: dict[str, Any]

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self.body["data"])


@dataclass
class Receiver:
    """Answers 204 to a request every one of `secrets` verifies (each alone), 401 otherwise;
    503 while `down`, or for a batch of a tenant in `refusing`. `attempts` holds the
    `webhook-id` of every request, in arrival order, whatever the answer."""

    secrets: list[str] = field(default_factory=list)
    url: str = ""
    down: bool = False
    refusing: set[str] = field(default_factory=set)
    delay: float = 0.0
    attempts: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.attempts.append(headers.get("webhook-id", ""))
        await asyncio.sleep(self.delay)
        status = self._status(body, headers)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def _status(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            payloads = [Webhook(secret).verify(body, headers) for secret in self.secrets]
        except WebhookVerificationError as exc:
            self.unverified.append(str(exc))
            return 401
        payload = payloads[0]
        tenants = {event["tenant_id"] for event in payload["data"]}
        if self.down or tenants & self.refusing:
            return 503
        signatures = headers["webhook-signature"].split(" ")
        self.deliveries.append(Delivery(headers["webhook-id"], signatures, payload))
        return 204

    def events(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        """Every event received, in arrival order (of one tenant when given)."""
        return [
            event
            for d in self.deliveries
            for event in d.events
            if tenant_id is None or event["tenant_id"] == tenant_id
        ]


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    async with serving_here(receiver, lifespan="off") as url:
        receiver.url = f"{url}/events"
        yield receiver


async def subscribe(db: Database, receiver: Receiver, app_id: str = APP) -> str:
    """A client of `app_id` registered with `directory.read` and the receiver's URL; its events
    secret becomes the one the receiver checks. Returns the client's id."""
    registration = clients.Registration(
        app_id=app_id,
        name="App listening to the directory",
        redirect_uris=[],
        post_logout_redirect_uris=[],
        backchannel_logout_uri=None,
        initiate_login_uri=None,
        public=False,
        scopes=["directory.read"],
        events_uri=receiver.url,
    )
    async with db.transaction() as session:
        added = await clients.add(session, registration, Cipher(SECRET_KEY))
    assert added.events_secret is not None
    receiver.secrets = [added.events_secret]
    return added.client_id


async def deliver(
    db: Database, settings: Settings, now: datetime | None = None, passes: int = 10
) -> dict[str, int]:
    """The worker's delivery, pass after pass until one sends nothing; the summed counts."""
    sources = event_sources(settings)
    assert sources is not None
    total: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=10, follow_redirects=False) as http:
        for _ in range(passes):
            counts = await delivery.deliver_due(db, settings, http, sources, now)
            total = {k: total.get(k, 0) + v for k, v in counts.items()}
            if not any(counts.values()):
                return total
    raise AssertionError(f"still sending after {passes} passes: {json.dumps(total)}")
