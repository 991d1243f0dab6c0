"""The member list's `state=disabled` filter, which starts from the authorisations that are
not enabled: it names exactly the members the console shows as disabled, whatever else those
authorisations say, and pages through them in `userName` order."""

from __future__ import annotations

from identity.admin import service
from identity.db import Database
from identity.models import CANCELLED, DELETED, Authorisation
from tests.helpers.admin_rows import STAMP, TENANT, Person, add_people, add_tenant

OTHER_APP = "APP-2"


async def _listed(db: Database, **query: str | int) -> tuple[list[str], str | None]:
    async with db.read() as session:
        page = await service.members(session, TENANT, service.MemberQuery(**query))  # type: ignore[arg-type]
    return [row.user_name for row in page.items], page.next_cursor


async def test_disabled_is_the_members_the_console_shows_disabled(db: Database) -> None:
    await add_tenant(db)
    await add_people(
        db,
        Person("ann"),
        Person("bea", enabled=False),
        Person("cat", enabled=False, member_state=DELETED, auth_state=DELETED),
        Person("dan", enabled=False, auth_state=CANCELLED),
        Person("eve", enabled=False),  # enabled in another app: enabled
        Person("fay", enabled=False),
        Person("gus", enabled=False, tenant_id="T-OTHER"),
    )
    async with db.transaction() as session:
        session.add(
            Authorisation(
                tenant_id=TENANT,
                app_id=OTHER_APP,
                user_name="eve",
                instance_id="",
                role="user",
                enabled=True,
                last_sync_time=STAMP,
            )  # fmt: skip
        )
    everyone, _ = await _listed(db, limit=50)
    async with db.read() as session:
        page = await service.members(session, TENANT, service.MemberQuery(limit=50))
    shown = {row.user_name for row in page.items if row.state == "disabled"}
    assert shown == {"bea", "fay"} and "gus" not in everyone

    assert await _listed(db, state="disabled") == (["bea", "fay"], None)
    first, cursor = await _listed(db, state="disabled", limit=1)
    assert first == ["bea"] and cursor is not None
    assert await _listed(db, state="disabled", limit=1, cursor=cursor) == (["fay"], None)
    assert (await _listed(db, state="enabled"))[0] == ["ann", "eve"]
