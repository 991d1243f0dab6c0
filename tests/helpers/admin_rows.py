"""Directory rows for the admin wing's service tests, written straight to the database: a tenant
held by a live instance with one app, its members and their authorisations, sessions, and the
development notifier's file; and a member's local sign-in through the service, from a client
address of the test's choosing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from identity.admin import passwords
from identity.admin.passwords import Attempt, SignIn, authenticate
from identity.admin.throttle import Throttle
from identity.db import Database
from identity.models import (
    ACTIVE,
    AppCredential,
    Authorisation,
    Instance,
    LocalPassword,
    Member,
    MemberSession,
    SessionApp,
    Tenant,
    TenantInstance,
)
from identity.notify import FileSender, Notifier

PASSWORD = "Initial-Pass-1"  # noqa: S105 - the tests' password
TENANT, CODE, APP, INSTANCE = "T-ACME", "Acme", "APP-1", "I-ACME"
OTHER_TENANT = "T-OTHER"
NOW = datetime(2026, 12, 1, 9, 0, 0)
STAMP = "20261201090000000"


@dataclass(frozen=True)
class Person:
    user_name: str
    role: str = "user"
    mobile: str | None = None
    email: str | None = None
    enabled: bool = True
    member_state: str = ACTIVE
    auth_state: str = ACTIVE
    tenant_id: str = TENANT


async def add_tenant(db: Database, tenant_id: str = TENANT, code: str = CODE) -> None:
    instance = f"I-{tenant_id}"
    async with db.transaction() as s:
        s.add(
            Tenant(
                tenant_id=tenant_id,
                tenant_code=code,
                name=f"{code} Ltd",
                domain_name="https://auth.example.com",
                last_sync_time=STAMP,
            )
        )
        s.add(
            Instance(
                instance_id=instance,
                order_id=f"O-{tenant_id}",
                order_line_id="L-1",
                business_id="B-1",
                status=ACTIVE,
            )
        )
        s.add(TenantInstance(tenant_id=tenant_id, instance_id=instance, last_sync_time=STAMP))
        s.add(
            AppCredential(
                tenant_id=tenant_id,
                app_id=APP,
                instance_id=instance,
                client_id="client",
                last_sync_time=STAMP,
            )
        )


async def add_people(db: Database, *people: Person) -> None:
    async with db.transaction() as s:
        for p in people:
            s.add(
                Member(
                    tenant_id=p.tenant_id,
                    user_name=p.user_name,
                    name=p.user_name.title(),
                    org_code="ORG-1",
                    mobile=p.mobile,
                    email=p.email,
                    state=p.member_state,
                    last_sync_time=STAMP,
                )
            )
            s.add(
                Authorisation(
                    tenant_id=p.tenant_id,
                    app_id=APP,
                    user_name=p.user_name,
                    instance_id=f"I-{p.tenant_id}",
                    role=p.role,
                    enabled=p.enabled,
                    state=p.auth_state,
                    last_sync_time=STAMP,
                )
            )


async def freeze_instance(db: Database, tenant_id: str = TENANT) -> None:
    async with db.transaction() as s:
        await s.execute(
            update(Instance).where(Instance.instance_id == f"I-{tenant_id}").values(status="frozen")
        )


async def add_session(db: Database, tenant_id: str, user_name: str, n: int) -> str:
    sid = f"sid-{user_name}-{n}"
    async with db.transaction() as s:
        s.add(
            MemberSession(
                id_hash=f"{user_name}-{n}".ljust(64, "0"),
                sid=sid,
                tenant_id=tenant_id,
                user_name=user_name,
                expires_at=datetime.now() + timedelta(hours=1),
            )
        )
        await s.flush()
        s.add(SessionApp(sid=sid, app_id=APP))
    return sid


async def sessions_of(db: Database, tenant_id: str, user_name: str) -> list[str]:
    async with db.read() as s:
        rows = await s.scalars(
            select(MemberSession.sid).where(
                MemberSession.tenant_id == tenant_id, MemberSession.user_name == user_name
            )
        )
        return sorted(rows)


def file_notifier(path: Path) -> Notifier:
    sender = FileSender(path)
    return Notifier({"sms": sender, "email": sender})


def outbox(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


OWNER, STRANGER = "203.0.113.5", "198.51.100.7"
"""Client addresses (their rate-limit keys): the member's own, and someone else's."""
THROTTLE = Throttle(per_minute=10_000, parallel=16, wait_seconds=60)
"""Bounds too wide to matter here: tests/test_local_login.py tests them over HTTP."""


async def sign_in(
    db: Database,
    user_name: str = "bob",
    password: str = PASSWORD,
    *,
    tenant: str = "acme",
    now: datetime = NOW,
    address: str = OWNER,
) -> SignIn:
    """`user_name@tenant` signs in locally with `password`, at `now`, from `address`."""
    return await authenticate(db, THROTTLE, Attempt(tenant, user_name, password, address, now))


OWNER_PASSWORD = "Owner-Pass-2024"  # noqa: S105 - the local sign-in tests' password


async def give_password(db: Database, user_name: str, *, must_change: bool = False) -> None:
    hashed = await passwords.hash_password(OWNER_PASSWORD)
    async with db.transaction() as s:
        await passwords.store_initial(s, TENANT, user_name, hashed, NOW)
        await s.execute(
            update(LocalPassword)
            .where(LocalPassword.user_name == user_name)
            .values(must_change=must_change)
        )
