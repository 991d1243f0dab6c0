"""Parts failing under identity, as real processes meet them: PostgreSQL stopped and started
during traffic, `identity serve` killed in the middle of a 500-user authSync, a tenant's auth
centre timing out, failing or answering garbage, and `identity worker` killed while it is
delivering back-channel logouts. Each ends with nothing half-written and with the work done
once the part is back."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, insert, select, update

from identity.db import Database, utcnow
from identity.models import Authorisation, LogoutDelivery, Member, MemberSession
from identity.settings import Settings
from tests.helpers.auth_centres import (
    CALLBACK,
    INFO,
    OK,
    TENANT,
    Script,
    answer,
    auth_centre,
    identity_with,
    provision,
)
from tests.helpers.faults import (
    kill,
    migrate,
    serving,
    signed_request,
    slow_write,
    worker,
    writing,
)
from tests.helpers.kit_bodies import (
    SUCCESS,
    auth_body,
    count,
    new_instance,
    stamp,
    tenant_body,
    users,
)
from tests.helpers.marketplace_client import SignedCalls
from tests.helpers.pg_cluster import Cluster, binaries, scratch_cluster
from tests.helpers.receivers import slow_receiver
from tests.helpers.servers import METRICS_AUTH
from tests.helpers.stack import assert_refused, refusal_reason
from tests.helpers.waiting import until

INTERNAL = "000005"


async def provisioned(marketplace: SignedCalls) -> str:
    """An instance and its tenant (T-ACME); the instance id."""
    instance = await new_instance(marketplace)
    reply = await marketplace.kit("tenantSync", tenant_body(instanceId=instance))
    assert reply["resultCode"] == SUCCESS, reply
    return instance


# --- PostgreSQL stopped and started during traffic ------------------------------------------


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if binaries() is None:
        pytest.skip("the PostgreSQL server programs (initdb, pg_ctl) are not installed")
    with scratch_cluster() as started:
        migrate(started.url)
        yield started


async def traffic(http: httpx.AsyncClient, stop: asyncio.Event) -> list[str]:
    """Probes and marketplace calls, one after another until `stop`: what each answered."""
    marketplace = SignedCalls(http)
    seen: list[str] = []
    while not stop.is_set():
        ready = await http.get("/readyz")
        seen.append(f"readyz {ready.status_code}")
        reply = await marketplace.basic({"activity": "queryInstance", "instanceId": "none"})
        seen.append(f"basic {reply['resultCode']}")
        await asyncio.sleep(0.02)
    return seen


async def test_a_database_outage_is_000005_and_503_then_the_same_calls_succeed(
    cluster: Cluster,
) -> None:
    """While PostgreSQL is stopped (`pg_ctl stop -m fast`: its connections are cut), the
    marketplace hears `000005` (retry) and pages 503; a sync sent meanwhile writes nothing;
    once it is started again the same process answers every call, and the retried sync is
    applied once."""
    with serving(cluster.url) as (url, process):
        pid = process.pid
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            marketplace = SignedCalls(http)
            instance = await provisioned(marketplace)
            login = await http.get("/sso/login", params={"tenant": TENANT})
            stop = asyncio.Event()
            background = asyncio.create_task(traffic(http, stop))
            await asyncio.sleep(0.3)
            cluster.stop()
            sync = auth_body(users(100), instanceId=instance, currentSyncTime=stamp(2))
            assert (await marketplace.kit("authSync", sync))["resultCode"] == INTERNAL
            await asyncio.sleep(0.3)
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
            page = await http.get("/sso/login", params={"tenant": TENANT})
            assert_refused(page, "database_unavailable")
            assert page.headers["retry-after"] == "5"
            api = await http.get(
                "/sso/session", headers={"cookie": "__Host-identity_session=made-up"}
            )
            assert api.status_code == 503 and api.json()["error"] == "database_unavailable"
            cluster.start()
            await until(lambda: _ready(http), "identity answers again without a restart", within=15)
            await asyncio.sleep(0.3)
            stop.set()
            seen = await background
            assert set(seen) <= {"readyz 200", "readyz 503", "basic 000003", "basic 000005"}
            assert {"readyz 503", "basic 000005", "basic 000003"} <= set(seen), seen
            db = Database(cluster.url)
            assert await count(db, Member) == 0  # the sync sent while it was down left nothing
            for _ in range(2):  # the marketplace's retry (new nonce), and a second one
                assert (await marketplace.kit("authSync", sync))["resultCode"] == SUCCESS
            again = await http.get("/sso/login", params={"tenant": TENANT})
            assert (again.status_code, refusal_reason(again)) == (
                login.status_code,
                refusal_reason(login),
            )
        assert process.poll() is None and process.pid == pid
    assert await count(db, Member) == 100 and await count(db, Authorisation) == 100
    await db.dispose()


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


# --- identity serve killed in the middle of a 500-user authSync -----------------------------


async def written(db: Database) -> tuple[int, int]:
    """Members and authorisations, read without waiting for a writer (a plain read)."""
    async with db.read() as session:
        members = await session.scalar(select(func.count()).select_from(Member))
        grants = await session.scalar(select(func.count()).select_from(Authorisation))
    return int(members or 0), int(grants or 0)


async def test_a_process_killed_during_a_500_user_sync_writes_all_or_nothing(
    database_url: str, db: Database
) -> None:
    """SIGKILL while the body is still arriving, then (a new process) while the sync's
    transaction is writing (the members and half the authorisations written, held there by a
    trigger): each time the directory holds none of the 500; a third process then takes the
    marketplace's retry (the same body, signed again) and applies all of it."""
    async with slow_write(db):
        with serving(database_url) as (url, process):
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                instance = await provisioned(SignedCalls(http))
            sync_body = auth_body(users(500), instanceId=instance, currentSyncTime=stamp(3))
            await _kill_during(url, process, sync_body, db, "mid-body")
        assert await written(db) == (0, 0)
        with serving(database_url) as (url, process):
            await _kill_during(url, process, sync_body, db, "mid-write")
        assert await written(db) == (0, 0)
    with serving(database_url) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            retried = await SignedCalls(http).kit("authSync", sync_body)
    assert retried["resultCode"] == SUCCESS, retried
    assert await written(db) == (500, 500)


async def _kill_during(
    url: str, process: subprocess.Popen[str], body: dict[str, Any], db: Database, when: str
) -> None:
    head, raw = signed_request("authSync", body)
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as conn:
        if when == "mid-body":
            conn.sendall(head + raw[: len(raw) // 2])
            await asyncio.sleep(0.3)
        else:
            conn.sendall(head + raw)
            await _writing_for(db, conn, 0.5)
        kill(process)


async def _writing_for(db: Database, conn: socket.socket, seconds: float) -> None:
    """Until the sync has been writing for `seconds` (and still is), or fail."""
    conn.setblocking(False)
    started = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert await written(db) == (0, 0), "rows visible while the sync is being written"
        with contextlib.suppress(BlockingIOError):
            assert not conn.recv(1, socket.MSG_PEEK), "answered before it could be killed"
        if await writing(db):
            started = started or time.monotonic()
            if time.monotonic() - started >= seconds:
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the sync was not written within 20 s")


# --- the auth centre timing out, failing, answering garbage ---------------------------------


def scripted(mode: dict[str, str]) -> Any:
    """An auth centre whose token endpoint does what `mode["now"]` says: `timeout` (answers
    after 5 s, far past identity's deadline), `5xx`, `garbage` (a 200 that is not JSON) or `ok`."""

    def respond(handler: BaseHTTPRequestHandler, script: Script) -> None:
        if handler.command == "GET":
            answer(handler, *INFO)
        elif mode["now"] == "timeout":
            time.sleep(5)
            answer(handler, *OK)
        elif mode["now"] == "5xx":
            answer(handler, 503, "busy")
        elif mode["now"] == "garbage":
            answer(handler, 200, '\x00{"access_token": ]]')
        else:
            answer(handler, *OK)

    return respond


async def upstream_metrics(identity: httpx.AsyncClient) -> dict[str, float]:
    text_ = (await identity.get("/metrics", headers=METRICS_AUTH)).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text_):
        for sample in family.samples:
            if sample.name == "identity_sso_upstream_errors_total":
                found[sample.labels["kind"]] = sample.value
            if sample.name == "identity_upstream_call_seconds_count":
                found[f"seconds:{sample.labels['call']}"] = sample.value
    return found


async def test_an_auth_centre_timing_out_failing_or_answering_garbage(
    settings: Settings, db: Database, private_key_file: Path
) -> None:
    """Each failure is the bilingual refusal page with its reason and no session; garbage is
    an answer (it never opens the breaker), a timeout and a 5xx are not: after two of them the
    breaker opens and the next login fails fast without calling the auth centre; every call
    is timed and every failure counted."""
    mode = {"now": "garbage"}
    changes = {
        "upstream_timeout_seconds": 0.5,
        "upstream_breaker_failures": 2,
        "upstream_breaker_cooldown_seconds": 30.0,
    }
    with auth_centre(respond=scripted(mode)) as server:
        async with identity_with(settings, **changes) as identity:
            await provision(identity, private_key_file, server.url)
            expected = [
                ("garbage", "upstream_error"),
                ("garbage", "upstream_error"),  # answers: the breaker stays closed
                ("timeout", "upstream_timeout"),
                ("5xx", "upstream_error"),  # the second transient failure opens it
                ("ok", "upstream_unavailable"),  # refused at once: not called
            ]
            for now, reason in expected:
                mode["now"] = now
                started = time.monotonic()
                page = await identity.get(CALLBACK, params={"code": "a-code", "tenant": TENANT})
                took = time.monotonic() - started
                assert_refused(page, reason)
                assert "identity_session" not in page.headers.get("set-cookie", "")
                assert took < (3.0 if now == "timeout" else 2.0), (now, took)
            assert page.headers["retry-after"] == "30"
            assert server.script.requests == 4
            counted = await upstream_metrics(identity)
    assert counted == {
        "bad_response": 2, "timeout": 1, "server_error": 1, "unavailable": 1, "seconds:token": 4,
    }  # fmt: skip
    assert await count(db, MemberSession) == 0


# --- identity worker killed while delivering back-channel logouts ---------------------------

LOGOUTS = 5


def sid_of(logout_token: str) -> str:
    payload = logout_token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"])


async def deliveries(db: Database) -> dict[str, Any]:
    async with db.read() as session:
        found = await session.execute(
            select(LogoutDelivery.sid, LogoutDelivery.delivered_at, LogoutDelivery.claimed_until)
        )
    return {sid: (delivered, claimed) for sid, delivered, claimed in found}


async def test_a_worker_killed_while_delivering_logouts(database_url: str, db: Database) -> None:
    """The worker is SIGKILLed while the app holds the first logout's POST: that row stays
    leased (60 s, docs/provider.md), so a new worker delivers the four others at once and not
    that one; once the lease has run out (moved back here rather than waited for) it is sent
    again. Each logout is delivered; the one whose first attempt reached the app arrives twice,
    as the lease rules allow, and no other does."""
    now = utcnow()
    with slow_receiver() as app:
        async with db.transaction() as session:
            await session.execute(
                insert(LogoutDelivery),
                [
                    {"client_id": "c1", "uri": app.url, "sid": f"sid-{n}", "tenant_id": "t1",
                     "user_name": f"u{n}", "created_at": now, "attempts": 0,
                     "next_attempt_at": now - timedelta(seconds=1)}
                    for n in range(LOGOUTS)
                ],
            )  # fmt: skip
        with worker(database_url) as first:
            assert await asyncio.to_thread(app.arrived.wait, 30), "nothing was sent"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        app.release.set()
        killed = await deliveries(db)
        assert killed["sid-0"][0] is None and killed["sid-0"][1] > utcnow()  # still leased
        with worker(database_url):
            await until(
                lambda: _delivered(db, LOGOUTS - 1), "the others delivered after the restart"
            )
            await asyncio.sleep(0.5)  # a few more polls: the leased one is left alone
            assert sorted(map(sid_of, app.tokens)) == [f"sid-{n}" for n in range(LOGOUTS)]
            async with db.transaction() as session:  # the lease runs out
                await session.execute(
                    update(LogoutDelivery)
                    .where(LogoutDelivery.sid == "sid-0")
                    .values(claimed_until=utcnow() - timedelta(seconds=1))
                )
            await until(lambda: _delivered(db, LOGOUTS), "the killed one delivered")
            await asyncio.sleep(0.5)
    received = sorted(map(sid_of, app.tokens))
    assert received == ["sid-0", *(f"sid-{n}" for n in range(LOGOUTS))]
    assert all(claimed is None for _, claimed in (await deliveries(db)).values())


async def _delivered(db: Database, expected: int) -> bool:
    found = await deliveries(db)
    return sum(delivered is not None for delivered, _ in found.values()) == expected
