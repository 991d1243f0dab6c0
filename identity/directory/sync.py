"""The guarded bulk upsert every sync is built on.

Natural keys make repeats idempotent; the `last_sync_time` guard makes ordering safe: a row is
written only when the incoming sync is at least as new as the stored one (contract §7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
