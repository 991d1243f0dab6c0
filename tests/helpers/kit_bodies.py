"""Builders for KooGallery kit (and a few basic) call bodies, and small database read helpers.

Builders take overrides under their wire names (`flag=0`, `timeStamp=stamp(5)`, ...), so a test
states only what it is about.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx2 as httpx
from sqlalchemy import func, select
from sqlalchemy.sql import ColumnElement

from identity.app import create_app
from identity.db import Database
from identity.marketplace.signing import Kind, sign
from identity.models import (
    AppCredential,
    Authorisation,
    Base,
    Department,
    Member,
    Tenant,
    TenantInstance,
)
from identity.settings import Settings
from tests.helpers.marketplace_client import KIT_KEY, SignedCalls

TENANT = "T-ACME"
APP = "APP-1"
INSTANCE = "INST-1"
ORDER = "ORDER-1"
SUCCESS = "000000"
INVALID = "000002"

Body = dict[str, Any]


def stamp(n: int = 1) -> str:
    """A `yyyyMMddHHmmssSSS` sync time; a bigger `n` is later."""
    return f"20240101{n:09d}"


def _kit(defaults: Body, overrides: Body) -> Body:
    common = {"instanceId": INSTANCE, "tenantId": TENANT, "testFlag": 0, "timeStamp": stamp(1)}
    return {**common, **defaults, **overrides}


def tenant_body(**overrides: Any) -> Body:
    defaults = {
        "orderId": ORDER,
        "tenantCode": "acme",
        "name": "Acme",
        "domainName": "https://acme.example.com",
        "flag": 1,
    }
    return _kit(defaults, overrides)


def app_body(client_secret: str, **overrides: Any) -> Body:
    defaults = {"appId": APP, "clientId": "client-1", "clientSecret": client_secret, "flag": 1}
    return _kit(defaults, overrides)


def user(user_name: str, **overrides: Any) -> Body:
    return {
        "userName": user_name,
        "name": f"Name of {user_name}",
        "orgCode": "D1",
        "role": "user",
        "enable": "true",
        **overrides,
    }


def users(count: int, prefix: str = "u") -> list[Body]:
    return [user(f"{prefix}{i:04d}") for i in range(count)]


def auth_body(user_list: Any, **overrides: Any) -> Body:
    defaults = {"appId": APP, "userList": user_list, "currentSyncTime": stamp(1), "flag": 1}
    return _kit(defaults, overrides)


def org_body(org_code: str, org_name: str = "", **overrides: Any) -> Body:
    defaults = {
        "orgCode": org_code,
        "orgName": org_name or f"Dept {org_code}",
        "parentCode": "",
        "flag": 1,
    }
    return _kit(defaults, overrides)


def org(org_code: str, parent_code: str = "", name: str = "") -> Body:
    return {"orgCode": org_code, "orgName": name or f"Dept {org_code}", "parentCode": parent_code}


def all_org_body(org_list: Any, **overrides: Any) -> Body:
    return _kit({"orgInfoList": org_list}, overrides)


def new_instance_body(order_id: str = ORDER) -> Body:
    return {
        "activity": "newInstance",
        "orderId": order_id,
        "orderLineId": f"{order_id}-1",
        "businessId": uuid.uuid4().hex,
    }


# --- sending -------------------------------------------------------------------------------


async def kit_ok(marketplace: SignedCalls, name: str, body: Body) -> None:
    answer = await marketplace.kit(name, body)
    assert answer["resultCode"] == SUCCESS, answer


async def kit_raw(marketplace: SignedCalls, name: str, raw: bytes) -> dict[str, Any]:
    """Send bytes that need not be a JSON object, signed over the raw body (accepted fallback)."""
    nonce, timestamp = uuid.uuid4().hex, str(int(time.time() * 1000))
    signature = sign(Kind.KIT, KIT_KEY, nonce, timestamp, raw)
    return await marketplace.kit(name, raw, nonce=nonce, timestamp=timestamp, signature=signature)


async def new_instance(marketplace: SignedCalls, order_id: str = ORDER) -> str:
    answer = await marketplace.basic(new_instance_body(order_id))
    assert answer["resultCode"] == SUCCESS, answer
    return str(answer["instanceId"])


@asynccontextmanager
async def sender_for(settings: Settings) -> AsyncIterator[tuple[SignedCalls, httpx.AsyncClient]]:
    """A marketplace sender for an app built from other settings than the `client` fixture's."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="https://identity.example.com"
        ) as client:
            yield SignedCalls(client), client
    finally:
        await app.state.db.dispose()


# --- reading the database ------------------------------------------------------------------


async def rows(db: Database, model: type[Base], *where: ColumnElement[bool]) -> list[Any]:
    async with db.transaction() as s:
        return list(await s.scalars(select(model).where(*where)))


async def count(db: Database, model: type[Base], *where: ColumnElement[bool]) -> int:
    async with db.transaction() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def one(db: Database, model: type[Base], *where: ColumnElement[bool]) -> Any:
    found = await rows(db, model, *where)
    assert len(found) == 1, found
    return found[0]


DIRECTORY: Sequence[type[Base]] = (
    Tenant,
    TenantInstance,
    AppCredential,
    Department,
    Member,
    Authorisation,
)


async def directory_counts(db: Database) -> dict[str, int]:
    return {m.__tablename__: await count(db, m) for m in DIRECTORY}


async def assert_nothing_written(db: Database) -> None:
    assert set((await directory_counts(db)).values()) == {0}
