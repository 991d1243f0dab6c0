"""The guarded bulk upsert every sync is built on, and the count (or, when an app listens to the
directory's changes, the rows) of what is already there that tells a sync what it added.

Natural keys make repeats idempotent; the `last_sync_time` guard makes ordering safe: a row is
written only when the incoming sync is at least as new as the stored one (contract §7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, func, literal, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from identity.db import insert_for, utcnow
from identity.models import Base

Key = tuple[Any, ...]


async def upsert_newer(
    session: AsyncSession,
    model: type[Base],
    keys: Sequence[str],
    rows: Sequence[dict[str, Any]],
    *,
    returning: bool = True,
) -> set[Key]:
    """Upsert `rows` (all with the same columns); return the keys actually written.

    Rows are de-duplicated by key (the last one wins, as a lenient JSON parser would) and sent
    in key order, so concurrent syncs over the same members lock rows in the same order.

    `returning=False` reads nothing back and returns an empty set. Use it when the keys are not
    needed: the rows then go as a plain executemany, while RETURNING makes SQLAlchemy render one
    multi-row INSERT that psycopg re-parses on every call (about 3x slower for 500 rows).
    """
    unique = {tuple(row[k] for k in keys): row for row in rows}
    if not unique:
        return set()
    now = utcnow()
    batch = [{**unique[k], "created_at": now, "updated_at": now} for k in sorted(unique)]
    table = model.__table__
    stmt = insert_for(session)(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: stmt.excluded[c] for c in batch[0] if c not in keys and c != "created_at"},
        where=table.c.last_sync_time <= stmt.excluded.last_sync_time,
    )
    if not returning:
        await session.execute(stmt, batch)
        return set()
    result = await session.execute(stmt.returning(*(table.c[k] for k in keys)), batch)
    return {tuple(row) for row in result}


async def count_among(
    session: AsyncSession,
    model: type[Base],
    key: str,
    values: Sequence[str],
    *where: ColumnElement[bool],
) -> int:
    """How many of `values` (distinct) name a row of `model` by its `key` column that also meets
    `where` (which should fix the columns an index has before `key`): one index lookup per
    value, so the work is bounded by the values, never by the table.

    SQLite searches an `IN` list in the index value by value. PostgreSQL's planner may instead
    read every row the other conditions allow and compare each with every value of the list
    (a cached generic plan cannot hash it): 500 names against a 15,000-member tenant cost
    200 ms there, growing with the tenant. So on PostgreSQL each value drives a lookup of its
    own (a LATERAL subquery with LIMIT 1, which the planner cannot turn into a scan or a join).
    """
    if not values:
        return 0
    column = model.__table__.c[key]
    if session.get_bind().dialect.name != "postgresql":
        found = select(func.count()).select_from(model).where(column.in_(values), *where)
        return int(await session.scalar(found) or 0)
    incoming = (
        func.unnest(bindparam("values", list(values), type_=ARRAY(String)))
        .table_valued("value")
        .render_derived(name="incoming")
    )
    lookup = select(literal(1)).where(column == incoming.c.value, *where).limit(1).lateral()
    counted = select(func.count()).select_from(incoming).join(lookup, true())
    return int(await session.scalar(counted) or 0)


async def rows_among(
    session: AsyncSession,
    model: type[Base],
    key: str,
    values: Sequence[str],
    columns: Sequence[str],
    *where: ColumnElement[bool],
) -> dict[str, tuple[Any, ...]]:
    """The `columns` of the rows of `model` that `values` name by their `key` column and that
    meet `where`, by value: what `count_among` counts, read the same way (an `IN` list on
    SQLite, one LATERAL lookup per value on PostgreSQL), so it stays one index lookup per value
    however large the table."""
    if not values:
        return {}
    table = model.__table__
    column, wanted = table.c[key], [table.c[c] for c in columns]
    if session.get_bind().dialect.name != "postgresql":
        found = await session.execute(select(column, *wanted).where(column.in_(values), *where))
        return {row[0]: tuple(row[1:]) for row in found}
    incoming = (
        func.unnest(bindparam("values", list(values), type_=ARRAY(String)))
        .table_valued("value")
        .render_derived(name="incoming")
    )
    lookup = select(*wanted).where(column == incoming.c.value, *where).limit(1).lateral()
    found = await session.execute(
        select(incoming.c.value, *lookup.c).select_from(incoming).join(lookup, true())
    )
    return {row[0]: tuple(row[1:]) for row in found}
