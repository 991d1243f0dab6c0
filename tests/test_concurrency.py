"""Concurrent marketplace calls against two real service processes sharing one PostgreSQL.

The marketplace retries and may deliver the same callback to several replicas at once: the
natural-key upserts, the idempotent newInstance and the database nonce guard must hold across
processes, not only within one event loop.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from identity.db import Database
from identity.marketplace.signing import Kind, sign_body
from identity.models import Authorisation, Department, Instance, MarketplaceCall, Member, Nonce
from tests.helpers.kit_bodies import all_org_body, kit_ok, org, stamp
from tests.helpers.marketplace_client import (
    BASIC_KEY,
    KIT_KEY,
    SECRET_KEY,
    SignedCalls,
    encode,
    now_ms,
)
from tests.helpers.servers import ServiceProcesses, service_env

PROCESSES = 2
CONCURRENT_CALLS = 20
USERS_PER_CALL = 50
NONCE_ROUNDS = 10
ORG_TREE_SIZE = 40
ORG_SYNCS = 10

OK, AUTH_FAILED = "000000", "000001"


@pytest.fixture(scope="module")
def services(database_url: str, is_postgres: bool) -> Iterator[ServiceProcesses]:
    if not is_postgres:
        pytest.skip(
            "cross-process concurrency needs PostgreSQL: set IDENTITY_TEST_DATABASE_URL "
            "(SQLite serialises every writer with BEGIN IMMEDIATE)"
        )
    env = service_env(database_url, secret_key=SECRET_KEY, basic_key=BASIC_KEY, kit_key=KIT_KEY)
    with ServiceProcesses(PROCESSES, env) as processes:
        yield processes


@pytest.fixture
async def senders(services: ServiceProcesses, db: Database) -> AsyncIterator[list[SignedCalls]]:
    """One signing sender per process; `db` empties every table first."""
    clients = [
        httpx.AsyncClient(base_url=url, timeout=30.0, limits=httpx.Limits(max_connections=50))
        for url in services.urls
    ]
    try:
        yield [SignedCalls(client) for client in clients]
    finally:
        for client in clients:
            await client.aclose()


async def _count(db: Database, model: Any, *where: Any) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))


async def _peak_overlap(db: Database) -> int:
    """The most audited calls that were in flight at one instant (proves the race happened)."""
    async with db.transaction() as session:
        calls = (
            await session.execute(select(MarketplaceCall.received_at, MarketplaceCall.latency_ms))
        ).all()
    events = []
    for ended, latency_ms in calls:
        events += [(ended - timedelta(milliseconds=latency_ms), 1), (ended, -1)]
    peak = running = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def _users(count: int) -> list[dict[str, Any]]:
    return [
        {
            "userName": f"user{i:03d}",
            "name": f"User {i}",
            "orgCode": "10000",
            "role": "admin" if i == 0 else "user",
            "enable": "true",
            "email": f"user{i}@acme.example.com",
        }
        for i in range(count)
    ]


async def test_identical_auth_syncs_at_once(senders: list[SignedCalls], db: Database) -> None:
    body = {
        "instanceId": "I-1",
        "tenantId": "T-1",
        "appId": "APP-1",
        "userList": _users(USERS_PER_CALL),
        "currentSyncTime": "20240101120000000",
        "flag": 1,
        "testFlag": 0,
        "timeStamp": "20240101120000000",
    }
    replies = await asyncio.gather(
        *(senders[i % PROCESSES].kit("authSync", body) for i in range(CONCURRENT_CALLS))
    )
    assert [r["resultCode"] for r in replies] == [OK] * CONCURRENT_CALLS, replies

    async with db.transaction() as session:
        members = (
            await session.execute(
                select(Member.user_name, func.count())
                .where(Member.tenant_id == "T-1")
                .group_by(Member.user_name)
            )
        ).all()
        auths = (
            await session.execute(
                select(Authorisation.user_name, func.count())
                .where(Authorisation.tenant_id == "T-1", Authorisation.app_id == "APP-1")
                .group_by(Authorisation.user_name)
            )
        ).all()
    expected = {f"user{i:03d}": 1 for i in range(USERS_PER_CALL)}
    assert dict(members) == expected  # type: ignore[arg-type]
    assert dict(auths) == expected  # type: ignore[arg-type]
    assert await _count(db, Member) == USERS_PER_CALL
    assert await _count(db, Authorisation) == USERS_PER_CALL
    assert await _count(db, MarketplaceCall, MarketplaceCall.result_code == OK) == CONCURRENT_CALLS
    assert await _peak_overlap(db) > 1  # the calls really overlapped


async def test_concurrent_new_instance_for_one_order_line(
    senders: list[SignedCalls], db: Database
) -> None:
    replies = await asyncio.gather(
        *(
            senders[i % PROCESSES].basic(
                {
                    "activity": "newInstance",
                    "orderId": "CS-ORDER-1",
                    "orderLineId": "CS-ORDER-1-000001",
                    "businessId": f"business-{i}-{uuid.uuid4()}",
                }
            )
            for i in range(CONCURRENT_CALLS)
        )
    )
    assert [r["resultCode"] for r in replies] == [OK] * CONCURRENT_CALLS, replies
    instance_ids = {r["instanceId"] for r in replies}
    assert len(instance_ids) == 1, instance_ids

    async with db.transaction() as session:
        rows = (await session.scalars(select(Instance))).all()
    assert [(r.instance_id, r.order_id, r.order_line_id) for r in rows] == [
        (instance_ids.pop(), "CS-ORDER-1", "CS-ORDER-1-000001")
    ]
    assert await _peak_overlap(db) > 1


async def test_one_nonce_sent_to_both_processes_at_once(
    senders: list[SignedCalls], db: Database
) -> None:
    async def one_round(n: int) -> list[str]:
        nonce = uuid.uuid4().hex.upper() * 2
        timestamp = now_ms()
        raw = encode(
            {
                "activity": "newInstance",
                "orderId": f"CS-NONCE-{n}",
                "orderLineId": f"CS-NONCE-{n}-000001",
                "businessId": str(uuid.uuid4()),
            }
        )
        signature = sign_body(Kind.BASIC, BASIC_KEY, nonce, timestamp, raw)
        replies = await asyncio.gather(
            *(
                sender.basic(raw, nonce=nonce, timestamp=timestamp, signature=signature)
                for sender in senders
            )
        )
        return sorted(r["resultCode"] for r in replies)

    outcomes = await asyncio.gather(*(one_round(n) for n in range(NONCE_ROUNDS)))
    assert outcomes == [[OK, AUTH_FAILED]] * NONCE_ROUNDS
    assert await _count(db, Nonce) == NONCE_ROUNDS
    assert await _count(db, Instance) == NONCE_ROUNDS
    # The replays are refused, logged and counted, not audited: only the applied calls are.
    assert await _count(db, MarketplaceCall, MarketplaceCall.result_code == AUTH_FAILED) == 0
    assert await _count(db, MarketplaceCall, MarketplaceCall.result_code == OK) == NONCE_ROUNDS
    assert await _peak_overlap(db) > 1


async def test_full_org_syncs_of_different_halves_at_once(
    senders: list[SignedCalls], db: Database
) -> None:
    """Each call re-activates one half of the tree and marks the other half deleted, in its own
    order: two transactions locking the same rows in opposite orders must not deadlock."""
    codes = [f"D{i:02d}" for i in range(ORG_TREE_SIZE)]
    await kit_ok(senders[0], "allOrgSync", all_org_body([org(c) for c in codes]))
    rng = random.Random(4711)
    bodies = [
        all_org_body([org(c) for c in rng.sample(codes, ORG_TREE_SIZE // 2)], timeStamp=stamp(n))
        for n in range(2, 2 + ORG_SYNCS)
    ]
    assert len({json.dumps(b["orgInfoList"]) for b in bodies}) == ORG_SYNCS
    replies = await asyncio.gather(
        *(senders[i % PROCESSES].kit("allOrgSync", body) for i, body in enumerate(bodies))
    )
    assert [r["resultCode"] for r in replies] == [OK] * ORG_SYNCS, replies
    assert await _count(db, Department) == ORG_TREE_SIZE
    assert await _peak_overlap(db) > 1
