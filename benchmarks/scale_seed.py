"""A large directory written straight into the database, shaped as the syncs write it.

The tenants and what each holds besides its members (instance, binding, app credential with its
client secret encrypted as tenantSync stores it, five departments) go in as executemany batches;
members and their authorisations by INSERT ... SELECT over a recursive counter, a slice at a
time, so that no row of them is built in this process. Member `i` (0 ≤ i < count) of the filler
tenants belongs to tenant `i % tenants`; user names are `u` and eight digits, in counter order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    String,
    case,
    cast,
    func,
    insert,
    literal,
    select,
    text,
)

from benchmarks.admin_members import APP_ID, FIRST, GIVEN, LAST, SURNAMES
from identity.crypto import Cipher
from identity.db import Database, utcnow
from identity.directory.tenants import secret_context
from identity.models import (
    ACTIVE,
    CANCELLED,
    DELETED,
    AppCredential,
    Authorisation,
    Department,
    Instance,
    Member,
    Tenant,
    TenantInstance,
)
from tests.helpers.marketplace_client import SECRET_KEY

Shape = Callable[[ColumnElement[int]], ColumnElement[str]]
SYNC_TIME = "20261201090000000"
SLICE = 100_000  # members per INSERT ... SELECT
BATCH = 2_000  # rows per executemany
DEPARTMENTS = 5  # of each filler tenant: the root and four below it


def filler_id(k: int) -> str:
    return f"scale-{k:05d}"


def tenant_rows(k: int, cipher: Cipher) -> dict[type[Any], list[dict[str, Any]]]:
    """Filler tenant `k`: what newInstance, tenantSync, applicationSync and allOrgSync write."""
    tenant_id, instance_id, now = filler_id(k), f"scale-i-{k:05d}", utcnow()
    stamps = {"created_at": now, "updated_at": now}
    synced = {**stamps, "state": ACTIVE, "last_sync_time": SYNC_TIME}
    secret = cipher.encrypt(f"secret-{k}", secret_context(tenant_id, APP_ID))
    departments = [
        {
            "tenant_id": tenant_id,
            "org_code": f"d{d}",
            "name": f"部门 {d}",
            "parent_code": "" if d == 0 else "d0",
            **synced,
        }  # fmt: skip
        for d in range(DEPARTMENTS)
    ]
    return {
        Instance: [
            {
                "instance_id": instance_id,
                "order_id": f"CS-SCALE-{k}",
                "order_line_id": f"CS-SCALE-{k}-1",
                "business_id": instance_id,
                "status": ACTIVE,
                **stamps,
            }  # fmt: skip
        ],
        Tenant: [
            {
                "tenant_id": tenant_id,
                "tenant_code": f"scale{k}",
                "name": f"企业 {k}",
                "domain_name": f"https://scale{k}.auth.example.com",
                **synced,
            }  # fmt: skip
        ],
        TenantInstance: [
            {
                "tenant_id": tenant_id,
                "instance_id": instance_id,
                "order_id": f"CS-SCALE-{k}",
                **synced,
            }  # fmt: skip
        ],
        AppCredential: [
            {
                "tenant_id": tenant_id,
                "app_id": APP_ID,
                "instance_id": instance_id,
                "client_id": f"scale-client-{k}",
                "client_secret_enc": secret,
                **synced,
            }  # fmt: skip
        ],
        Department: departments,
    }


def batches(tenants: range, cipher: Cipher) -> Iterator[dict[type[Any], list[dict[str, Any]]]]:
    for start in range(tenants.start, tenants.stop, BATCH // DEPARTMENTS):
        batch: dict[type[Any], list[dict[str, Any]]] = {}
        for k in range(start, min(start + BATCH // DEPARTMENTS, tenants.stop)):
            for model, rows in tenant_rows(k, cipher).items():
                batch.setdefault(model, []).extend(rows)
        yield batch


def counter(lo: int, hi: int) -> Any:
    """A CTE of the integers lo..hi-1, column `i`."""
    first = select(cast(literal(lo), BigInteger).label("i")).cte("n", recursive=True)
    return first.union_all(select(first.c.i + 1).where(first.c.i < hi - 1))


def pick(i: ColumnElement[int], choices: str, step: int, width: Any = 1) -> ColumnElement[str]:
    start, length = cast(1 + (i * step) % len(choices), Integer), cast(width, Integer)
    return func.substr(literal(choices), start, length, type_=String)


def digits(i: ColumnElement[int], offset: int) -> ColumnElement[str]:
    return cast(i + offset, String)


def person_name(i: ColumnElement[int]) -> ColumnElement[str]:
    """3 in 10 Latin (`First Last`), else a Chinese surname and one or two given characters: each
    surname about 1 in 31, like the real mix the admin benchmark uses."""
    latin = case({n: literal(name) for n, name in enumerate(FIRST)}, value=i % len(FIRST))
    latin = (
        latin
        + " "
        + case({n: literal(name) for n, name in enumerate(LAST)}, value=(i // 7) % len(LAST))
    )
    chinese = (
        pick(i, SURNAMES, 7919) + pick(i, GIVEN, 104_729, 1) + pick(i // 3, GIVEN, 31, 1 + i % 2)
    )
    return case(((i * 37) % 10 < 3, latin), else_=chinese)


def member_rows(i: Any, tenant: ColumnElement[str], org: ColumnElement[str]) -> Any:
    user_name = "u" + digits(i, 10_000_000)
    now = literal(utcnow(), DateTime)
    deleted = i % 199 == 7
    columns = {
        "tenant_id": tenant, "user_name": user_name, "name": person_name(i), "org_code": org,
        "position": literal("工程师"), "employee_code": "E" + digits(i, 0),
        "mobile": "+86139" + digits(i, 10_000_000), "email": user_name + "@example.com",
        "state": case((deleted, DELETED), else_=ACTIVE), "last_sync_time": literal(SYNC_TIME),
        "created_at": now, "updated_at": now,
    }  # fmt: skip
    return columns


def authorisation_rows(i: Any, tenant: ColumnElement[str], instance: ColumnElement[str]) -> Any:
    now = literal(utcnow(), DateTime)
    deleted, cancelled, disabled = i % 199 == 7, i % 197 == 11, i % 101 == 3
    return {
        "tenant_id": tenant, "app_id": literal(APP_ID), "user_name": "u" + digits(i, 10_000_000),
        "instance_id": instance, "role": case((i % 5000 == 0, "admin"), else_="user"),
        "enabled": ~(deleted | disabled),
        "state": case((deleted, DELETED), (cancelled, CANCELLED), else_=ACTIVE),
        "last_sync_time": literal(SYNC_TIME), "created_at": now, "updated_at": now,
    }  # fmt: skip


async def insert_members(
    db: Database, lo: int, hi: int, tenant_of: Shape, org_of: Shape, instance_of: Shape
) -> None:
    """Members lo..hi-1 and their authorisations, a slice of `SLICE` per statement; the
    functions give each row's tenant, department and instance from its counter."""
    for start in range(lo, hi, SLICE):
        n = counter(start, min(start + SLICE, hi))
        i = n.c.i
        for model, columns in (
            (Member, member_rows(i, tenant_of(i), org_of(i))),
            (Authorisation, authorisation_rows(i, tenant_of(i), instance_of(i))),
        ):
            query = select(*columns.values()).select_from(n)
            async with db.transaction() as session:
                await session.execute(insert(model.__table__).from_select(list(columns), query))


async def seed(db: Database, code: str, members: int, tenants: int, large: int) -> None:
    """`large` members into the provisioned tenant `code` (the admin and the member it has count
    among them), the rest across `tenants - 1` filler tenants."""
    async with db.transaction() as session:
        bench_id, instance_id = (
            await session.execute(
                select(AppCredential.tenant_id, AppCredential.instance_id)
                .join(Tenant, Tenant.tenant_id == AppCredential.tenant_id)
                .where(Tenant.tenant_code == code)
            )
        ).one()
    cipher = Cipher(SECRET_KEY)
    for batch in batches(range(tenants - 1), cipher):
        async with db.transaction() as session:
            for model, rows in batch.items():
                await session.execute(insert(model.__table__), rows)
    fillers = tenants - 1
    await insert_members(
        db, 0, members - large,
        lambda i: "scale-" + func.substr(digits(i % fillers, 100_000), 2, type_=String),
        lambda i: "d" + cast(1 + (i // fillers) % (DEPARTMENTS - 1), String),
        lambda i: "scale-i-" + func.substr(digits(i % fillers, 100_000), 2, type_=String),
    )  # fmt: skip
    await insert_members(
        db, members - large + 2, members,
        lambda i: literal(bench_id),
        lambda i: f"{code}-d" + func.substr(digits(1 + i % 19, 100), 2, type_=String),
        lambda i: literal(instance_id),
    )  # fmt: skip
    # what a live database would have done by now: PostgreSQL's autovacuum after a large
    # insert, SQLite's checkpoint of its write-ahead log back into the database file
    if db.engine.dialect.name == "postgresql":
        async with db.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("VACUUM ANALYZE"))
    else:
        async with db.single_read() as connection:  # outside any transaction
            await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
