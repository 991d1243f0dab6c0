"""How a page of Users costs deep into a large tenant (100,000 members): startIndex 1 against
99,901, a cursor page at the same depth, totalResults alone, a GET by id, a filter by userName.
Measured, not asserted (the figures are docs/scim.md's); it runs only with IDENTITY_SCIM_SCALE
set, on whichever database the suite uses:

    IDENTITY_SCIM_SCALE=100000 .venv/bin/pytest -n 0 -s tests/test_scim_scale.py
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Awaitable, Callable
from statistics import median
from typing import Any

import httpx2 as httpx
import pytest
from scim2_models import SearchRequest
from scim2_server.utils import parametrize
from sqlalchemy import insert, text

from identity.db import Database
from identity.models import Authorisation, Department, Member
from identity.provider import clients
from identity.provider.tokens import Subjects
from identity.scim import resources
from identity.scim.resources import GroupResource, UserResource
from identity.scim.storage import DirectoryStorage, view_of
from tests.helpers.admin_rows import APP, STAMP, TENANT, add_tenant
from tests.helpers.marketplace_client import SECRET_KEY

SIZE = int(os.environ.get("IDENTITY_SCIM_SCALE", "0"))
pytestmark = pytest.mark.skipif(not SIZE, reason="IDENTITY_SCIM_SCALE is not set")
USERS, GROUPS = resources.RESOURCE_TYPES


async def _seed(db: Database, size: int) -> None:
    await add_tenant(db)
    batch = 10_000
    for start in range(0, size, batch):
        names = [f"user{n:06d}" for n in range(start, min(start + batch, size))]
        async with db.transaction() as s:
            await s.execute(
                insert(Member),
                [
                    {"tenant_id": TENANT, "user_name": n, "name": n.title(), "org_code": "BIG",
                     "email": f"{n}@acme.example.com", "last_sync_time": STAMP}
                    for n in names
                ],
            )  # fmt: skip
            await s.execute(
                insert(Authorisation),
                [
                    {"tenant_id": TENANT, "app_id": APP, "user_name": n, "instance_id": "",
                     "role": "user", "enabled": True, "last_sync_time": STAMP}
                    for n in names
                ],
            )  # fmt: skip
    async with db.transaction() as s:
        s.add(Department(tenant_id=TENANT, org_code="BIG", name="Everyone", last_sync_time=STAMP))
        for n in range(99):  # a page of Groups: the big one and 99 without members
            s.add(Department(tenant_id=TENANT, org_code=f"D{n:02d}", name=f"Dept {n}",
                             last_sync_time=STAMP))  # fmt: skip
    async with db.write() as conn:  # the statistics a production database keeps up to date
        await conn.execute(text("ANALYZE"))


async def _timed(work: Callable[[], Awaitable[Any]], runs: int = 7) -> float:
    await work()  # warm: statement caches, the pool
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await work()
        times.append(time.perf_counter() - began)
    return median(times) * 1000


async def _token(client: httpx.AsyncClient, db: Database) -> str:
    registration = clients.Registration(APP, "Reader", [], [], None, None, public=False,
                                        scopes=[clients.DIRECTORY_SCOPE])  # fmt: skip
    async with db.transaction() as s:
        added = await clients.add(s, registration)
    basic = base64.b64encode(f"{added.client_id}:{added.secret}".encode()).decode()
    answer = await client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                               headers={"Authorization": f"Basic {basic}"})  # fmt: skip
    return str(answer.json()["access_token"])


async def test_deep_pages_cost_about_what_the_first_does(
    client: httpx.AsyncClient, db: Database, database_url: str
) -> None:
    await _seed(db, SIZE)
    async with db.single_read() as conn:
        view = await view_of(
            conn, "https://identity.example.com", Subjects(SECRET_KEY), TENANT, APP
        )
    assert view is not None
    storage = DirectoryStorage(db, view)
    request = parametrize(SearchRequest, UserResource)
    groups = parametrize(SearchRequest, GroupResource)
    deep = SIZE - 99
    last = f"user{deep - 2:06d}"

    async def page(position: Any = None, **query: Any) -> None:
        found = await storage.search([USERS], request.model_validate(query), position=position)
        assert found.total == (None if position else SIZE)  # a later cursor page counts none
        assert len(found.resources) == query["count"] or query["count"] == 0

    figures = {
        "startIndex=1 count=100": await _timed(lambda: page(startIndex=1, count=100)),
        f"startIndex={deep} count=100": await _timed(lambda: page(startIndex=deep, count=100)),
        f"startIndex={SIZE // 2 + 1} count=100": await _timed(
            lambda: page(startIndex=SIZE // 2 + 1, count=100)
        ),
        "cursor, first page, count=100": await _timed(lambda: page(cursor="", count=100)),
        f"cursor after #{deep - 1}, count=100": await _timed(
            lambda: page(cursor="", count=100, position={"after": last})
        ),
        "count=0 (totalResults only)": await _timed(lambda: page(count=0)),
        'filter userName eq "user050000@acme"': await _timed(
            lambda: storage.search(
                [USERS], request.model_validate({"filter": 'userName eq "user050000@acme"'})
            )
        ),
        'filter userName eq "abcdefghijkl@acme" (12 letters)': await _timed(
            lambda: storage.search(
                [USERS], request.model_validate({"filter": 'userName eq "abcdefghijkl@acme"'})
            )
        ),
        'filter emails.value eq "user050000@…"': await _timed(
            lambda: storage.search(
                [USERS],
                request.model_validate({"filter": 'emails.value eq "user050000@acme.example.com"'}),
            )
        ),
        "GET /Users/{id}": await _timed(
            lambda: storage.get(USERS, resources.user_id("user050000"))
        ),
        f"GET /Groups/{{id}} of {SIZE:,} ({resources.MEMBERS_CAP} listed)": await _timed(
            lambda: storage.get(GROUPS, resources.group_id("BIG"))
        ),
        "Groups page, excludedAttributes=members": await _timed(
            lambda: storage.search(
                [GROUPS], groups.model_validate({"excludedAttributes": "members"})
            )
        ),
        "Groups page, 100 with their members": await _timed(
            lambda: storage.search([GROUPS], groups.model_validate({"count": 100}))
        ),
    }
    headers = {"Authorization": f"Bearer {await _token(client, db)}"}

    async def http(**params: Any) -> None:
        answer = await client.get(f"/scim/v2/{TENANT}/Users", params=params, headers=headers)
        assert answer.status_code == 200, answer.text

    first = (await client.get(f"/scim/v2/{TENANT}/Users", params={"cursor": "", "count": 100},
                              headers=headers)).json()  # fmt: skip
    figures |= {
        "HTTP: startIndex=1 count=100": await _timed(lambda: http(startIndex=1, count=100)),
        f"HTTP: startIndex={deep} count=100": await _timed(
            lambda: http(startIndex=deep, count=100)
        ),
        "HTTP: the second cursor page, count=100": await _timed(
            lambda: http(cursor=first["nextCursor"], count=100)
        ),
    }
    print(f"\n{database_url.split(':')[0]}, {SIZE:,} members (median of 7, ms):")
    for name, ms in figures.items():
        print(f"  {name:50} {ms:8.1f}")
