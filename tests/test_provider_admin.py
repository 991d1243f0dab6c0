"""`identity clients …` and `identity keys …`, run as processes, as an operator would."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func, insert, select, update

from identity.db import Database, utcnow
from identity.models import (
    LogoutDelivery,
    MemberSession,
    OidcClient,
    OidcCode,
    OidcGrant,
    SigningKey,
)
from tests.helpers.cli import cli_json, run_cli

REDIRECT = "https://app.example.com/callback"


async def test_a_client_is_added_listed_rotated_and_removed(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    added = cli_json(
        database_url, tmp_path, "clients", "add", "--app", "demo-app", "--name", "Demo",
        "--redirect-uri", REDIRECT, "--redirect-uri", "http://127.0.0.1:5000/cb",
        "--backchannel-logout-uri", "https://app.example.com/bc",
    )  # fmt: skip
    client_id, secret = added["client_id"], added["client_secret"]
    assert len(secret) >= 40
    listed = cli_json(database_url, tmp_path, "clients", "list")
    assert [c["client_id"] for c in listed] == [client_id]
    assert listed[0]["redirect_uris"] == [REDIRECT, "http://127.0.0.1:5000/cb"]
    assert listed[0]["public"] is False
    assert secret not in json.dumps(listed)
    async with db.read() as session:
        stored = await session.scalar(select(OidcClient.secret_hash))
    assert stored and secret not in stored

    rotated = cli_json(database_url, tmp_path, "clients", "rotate-secret", client_id)
    assert rotated["client_id"] == client_id and rotated["client_secret"] != secret
    shown = cli_json(database_url, tmp_path, "clients", "show", client_id)
    assert shown["app_id"] == "demo-app"
    assert run_cli(database_url, tmp_path, "clients", "remove", client_id).returncode == 0
    assert cli_json(database_url, tmp_path, "clients", "list") == []
    assert run_cli(database_url, tmp_path, "clients", "show", client_id).returncode == 1


async def test_removing_a_client_ends_its_grants_and_drops_its_pending_logouts(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    """The removed client's grants (and their codes) go; its undelivered back-channel logouts
    are not sent to an address nobody answers for any more; another client keeps its own."""
    ids = [
        cli_json(
            database_url, tmp_path, "clients", "add", "--app", "a", "--name", name,
            "--redirect-uri", REDIRECT, "--backchannel-logout-uri", "https://app.example.com/bc",
        )["client_id"]
        for name in ("gone", "kept")
    ]  # fmt: skip
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            insert(MemberSession).values(
                id_hash="h" * 64, sid="s1", tenant_id="t", user_name="u", expires_at=now
            )
        )
        for n, client_id in enumerate(ids):
            grant = {"sid": "s1", "client_id": client_id, "app_id": "a", "scope": "openid"}
            await session.execute(insert(OidcGrant).values(grant_id=f"g{n}", **grant))
            await session.execute(
                insert(OidcCode).values(
                    code_hash=f"{n}" * 64, grant_id=f"g{n}",
                    redirect_uri=REDIRECT, expires_at=now,
                )
            )  # fmt: skip
            delivery = {"uri": "https://app.example.com/bc", "sid": "s0", "tenant_id": "t"}
            await session.execute(
                insert(LogoutDelivery).values(
                    client_id=client_id, user_name="u", next_attempt_at=now, **delivery
                )
            )

    assert run_cli(database_url, tmp_path, "clients", "remove", ids[0]).returncode == 0

    async with db.read() as session:
        grants = set(await session.scalars(select(OidcGrant.client_id)))
        codes = await session.scalar(select(func.count()).select_from(OidcCode))
        pending = set(await session.scalars(select(LogoutDelivery.client_id)))
    assert (grants, codes, pending) == ({ids[1]}, 1, {ids[1]})


async def test_a_public_client_has_no_secret(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    added = cli_json(
        database_url, tmp_path, "clients", "add", "--app", "a", "--name", "SPA",
        "--redirect-uri", REDIRECT, "--public",
    )  # fmt: skip
    assert set(added) == {"client_id"}
    done = run_cli(database_url, tmp_path, "clients", "rotate-secret", added["client_id"])
    assert done.returncode == 1


async def test_a_redirect_uri_that_cannot_be_matched_safely_is_refused(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    for uri in ("http://app.example.com/cb", "https://app.example.com/cb#x", "/relative"):
        done = run_cli(
            database_url, tmp_path, "clients", "add", "--app", "a", "--name", "n",
            "--redirect-uri", uri,
        )  # fmt: skip
        assert done.returncode == 2, uri
        assert "redirect URI" in done.stderr and "Traceback" not in done.stderr
    assert cli_json(database_url, tmp_path, "clients", "list") == []


async def test_keys_are_created_rotated_with_a_delay_and_revoked(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    assert cli_json(database_url, tmp_path, "keys", "list") == []  # listing makes none
    upcoming = cli_json(database_url, tmp_path, "keys", "rotate", "--alg", "RS256")
    listed = cli_json(database_url, tmp_path, "keys", "list")
    first = [k for k in listed if k["kid"] != upcoming["kid"]]
    assert [(k["alg"], k["state"]) for k in first] == [("ES256", "active")]  # made when needed
    assert [k["state"] for k in listed if k["kid"] == upcoming["kid"]] == ["next"]

    now = cli_json(database_url, tmp_path, "keys", "rotate", "--activate-after", "0")
    listed = {k["kid"]: k for k in cli_json(database_url, tmp_path, "keys", "list")}
    assert listed[now["kid"]]["state"] == "active"
    assert listed[first[0]["kid"]]["state"] == "retired"
    assert listed[first[0]["kid"]]["published"] is True  # until its tokens have expired
    assert listed[upcoming["kid"]]["state"] == "next"

    assert run_cli(database_url, tmp_path, "keys", "revoke", now["kid"]).returncode == 0
    after = cli_json(database_url, tmp_path, "keys", "list")
    active = [k for k in after if k["state"] == "active"]
    assert len(active) == 1 and active[0]["kid"] not in (now["kid"], upcoming["kid"])
    revoked = next(k for k in after if k["kid"] == now["kid"])
    assert (revoked["state"], revoked["published"], revoked["revoked"]) == ("retired", False, True)
    async with db.read() as session:
        private = (await session.scalars(select(SigningKey.private_enc))).all()
    assert all(b'"d"' not in blob for blob in private)  # private halves are encrypted


async def test_revoking_the_active_key_never_brings_an_older_one_back(
    database_url: str, tmp_path: Path, db: Database
) -> None:
    """A key rotated away long ago stays out of use and out of the JWKS after the key that
    replaced it is revoked: a new key takes over."""
    async with db.transaction() as session:
        await session.execute(delete(SigningKey))
    upcoming = cli_json(database_url, tmp_path, "keys", "rotate")["kid"]  # and the first key
    async with db.transaction() as session:
        await session.execute(delete(SigningKey).where(SigningKey.kid == upcoming))
    old = cli_json(database_url, tmp_path, "keys", "list")[0]["kid"]
    async with db.transaction() as session:  # rotated away a month ago
        await session.execute(
            update(SigningKey)
            .where(SigningKey.kid == old)
            .values(activates_at=utcnow() - timedelta(days=31))
        )
    newer = cli_json(database_url, tmp_path, "keys", "rotate", "--activate-after", "0")["kid"]
    async with db.transaction() as session:
        await session.execute(
            update(SigningKey)
            .where(SigningKey.kid == newer)
            .values(activates_at=utcnow() - timedelta(days=30))
        )
    assert run_cli(database_url, tmp_path, "keys", "revoke", newer).returncode == 0
    listed = {k["kid"]: k for k in cli_json(database_url, tmp_path, "keys", "list")}
    assert (listed[old]["state"], listed[old]["published"]) == ("retired", False)
    [active] = [k for k in listed.values() if k["state"] == "active"]
    assert active["kid"] not in (old, newer)
