"""identity.client's events receiver, as an app mounts it: a batch signed per Standard Webhooks
is handed over once, in order; a repeat is dropped; a forged, stale or malformed one is
refused; a handler that fails leaves the batch to be sent again."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI
from standardwebhooks import Webhook

from identity.client import DirectoryEvent, EventReceiver, events_router

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
OLD = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _batch(*cursors: int, tenant: str = "t1") -> bytes:
    events = [
        {"id": f"evt_{tenant}_{c}", "type": "directory.user.updated", "tenant_id": tenant,
         "cursor": c, "timestamp": "2026-12-06T10:00:00Z",
         "data": {"id": f"u{c}", "resource": {"id": f"u{c}", "userName": f"u{c}@acme"}}}
        for c in cursors
    ]  # fmt: skip
    return json.dumps(
        {"type": "batch", "timestamp": "2026-12-06T10:00:00Z", "data": events}
    ).encode()


def _headers(body: bytes, *keys: str, at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    msg_id = f"msg_{secrets.token_hex(4)}"
    signatures = " ".join(Webhook(key).sign(msg_id, at, body) for key in keys)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures, "content-type": "application/json"}  # fmt: skip


class App:
    def __init__(self, receiver: EventReceiver, fail: bool = False) -> None:
        self.handed: list[list[DirectoryEvent]] = []
        self.fail = fail
        app = FastAPI()
        app.include_router(events_router(receiver, self.handle))
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://app.test",
        )

    async def handle(self, events: list[DirectoryEvent]) -> None:
        if self.fail:
            raise RuntimeError("the app's database is down")
        self.handed.append(events)

    async def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post("/identity-events", content=body, headers=headers)


async def test_a_batch_is_handed_over_once_in_order_as_typed_events() -> None:
    app = App(EventReceiver(SECRET))
    body = _batch(1, 2, 3)
    answer = await app.post(body, _headers(body, SECRET))
    assert answer.status_code == 204, answer.text
    [events] = app.handed
    assert [e.cursor for e in events] == [1, 2, 3]
    assert events[0] == DirectoryEvent(
        id="evt_t1_1", type="directory.user.updated", tenant_id="t1", cursor=1,
        timestamp="2026-12-06T10:00:00Z", resource_id="u1",
        resource={"id": "u1", "userName": "u1@acme"},
    )  # fmt: skip

    again = await app.post(body, _headers(body, SECRET))  # resent: nothing new
    assert again.status_code == 204 and len(app.handed) == 1
    overlapping = _batch(3, 4)
    assert (await app.post(overlapping, _headers(overlapping, SECRET))).status_code == 204
    assert [e.cursor for e in app.handed[1]] == [4]
    other_tenant = _batch(1, tenant="t2")  # cursors are per tenant
    assert (await app.post(other_tenant, _headers(other_tenant, SECRET))).status_code == 204
    assert [(e.tenant_id, e.cursor) for e in app.handed[2]] == [("t2", 1)]


@pytest.mark.parametrize(
    ("keys", "age", "reason"),
    [((OLD,), timedelta(0), "bad_signature"), ((SECRET,), timedelta(minutes=10), "bad_signature"),
     ((), timedelta(0), "bad_signature")],
    ids=["another-secret", "stale", "unsigned"],
)  # fmt: skip
async def test_a_batch_not_signed_now_by_the_secret_is_refused(
    keys: tuple[str, ...], age: timedelta, reason: str
) -> None:
    app = App(EventReceiver(SECRET))
    body = _batch(1)
    headers = _headers(body, *keys, at=datetime.now(UTC) - age)
    answer = await app.post(body, headers)
    assert answer.status_code == 400 and answer.json()["error"] == reason
    assert app.handed == []


async def test_during_a_rotation_either_secret_is_accepted() -> None:
    app = App(EventReceiver([SECRET, OLD]))
    for n, key in enumerate((OLD, SECRET), start=1):
        body = _batch(n)
        assert (await app.post(body, _headers(body, key))).status_code == 204
    assert len(app.handed) == 2
    both = _batch(3)  # identity signs with both while its own overlap lasts
    assert (await app.post(both, _headers(both, SECRET, OLD))).status_code == 204


@pytest.mark.parametrize(
    "payload",
    [{"type": "batch"}, {"type": "batch", "data": [{"id": "x"}]}, [1, 2]],
    ids=["no-events", "event-without-cursor", "not-an-object"],
)
async def test_a_signed_body_that_is_not_a_batch_is_refused(payload: Any) -> None:
    app = App(EventReceiver(SECRET))
    body = json.dumps(payload).encode()
    answer = await app.post(body, _headers(body, SECRET))
    assert answer.status_code == 400 and answer.json()["error"] == "malformed"


async def test_a_handler_that_fails_gets_the_batch_again() -> None:
    receiver = EventReceiver(SECRET)
    failing = App(receiver, fail=True)
    body = _batch(1, 2)
    assert (await failing.post(body, _headers(body, SECRET))).status_code == 500
    working = App(receiver)  # the same receiver, its handler well again
    assert (await working.post(body, _headers(body, SECRET))).status_code == 204
    assert [e.cursor for e in working.handed[0]] == [1, 2]


def test_a_receiver_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="events secret"):
        EventReceiver([])
