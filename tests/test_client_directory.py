"""identity.client's DirectoryReader against identity as a process: it gets its own token,
walks a tenant's people and departments through scim2-client, and gets a new token when the
old one stops being accepted."""

from __future__ import annotations

import pytest
from scim2_models import NotFoundException

from identity.client import DirectoryReader, TokenRejected
from identity.db import Database
from identity.provider import clients
from tests.helpers.oidc_app import directory_reader
from tests.helpers.simulator_world import ACME, BETA
from tests.helpers.stack import Stack


async def _reader(acme: Stack, db: Database, **extra: object) -> DirectoryReader:
    added = await directory_reader(db, "Reader")
    assert added.secret is not None
    return DirectoryReader(acme.identity, added.client_id, added.secret)


async def test_the_reader_walks_the_people_the_app_may_see(acme: Stack, db: Database) -> None:
    reader = await _reader(acme, db)
    try:
        users = [user async for user in reader.users(ACME["tenantId"])]
        names = {u.user_name: u.active for u in users}
        # dave is not authorised for the app; carol is, but disabled
        assert names == {"alice@acme": True, "bob@acme": True, "carol@acme": False}
        alice = await _only(reader, 'userName eq "alice@acme"')
        assert alice.display_name == "Alice 爱丽丝" and alice.emails[0].value.startswith("alice@")
        groups = {g.display_name async for g in reader.groups(ACME["tenantId"])}
        assert groups == {"ACME", "研发部", "前端组", "销售部"}

        # a new secret ends the reader's token: with the new secret it gets another by itself
        async with db.transaction() as session:
            secret = await clients.rotate_secret(session, reader._credentials[0])
        assert secret is not None
        reader._credentials = (reader._credentials[0], secret)
        again = [user async for user in reader.users(ACME["tenantId"], 'userName eq "bob@acme"')]
        assert [u.user_name for u in again] == ["bob@acme"]
    finally:
        await reader.aclose()


async def _only(reader: DirectoryReader, query: str) -> object:
    [found] = [user async for user in reader.users(ACME["tenantId"], query)]
    return found


async def test_a_tenant_without_the_app_is_not_readable(acme: Stack, db: Database) -> None:
    reader = await _reader(acme, db)
    try:
        with pytest.raises(NotFoundException):  # beta was never provisioned on this stack
            [user async for user in reader.users(BETA["tenantId"])]
    finally:
        await reader.aclose()


async def test_a_reader_with_a_wrong_secret_is_told_so(acme: Stack, db: Database) -> None:
    reader = await _reader(acme, db)
    reader._credentials = (reader._credentials[0], "wrong")
    try:
        with pytest.raises(TokenRejected):
            await reader.token()
    finally:
        await reader.aclose()
