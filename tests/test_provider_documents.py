"""Discovery and the JWKS are sent as serialised once, with an ETag: a client that sends it back
gets 304 and no body, and a changed key set gets a new tag at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx2 as httpx

from tests.helpers.cli import run_cli
from tests.helpers.servers import METRICS_TOKEN


async def test_discovery_answers_304_to_its_own_etag(client: httpx.AsyncClient) -> None:
    first = await client.get("/.well-known/openid-configuration")
    assert first.status_code == 200
    assert first.json()["issuer"] == "https://identity.example.com"
    assert first.headers["content-type"] == "application/json"
    etag = first.headers["etag"]
    assert etag.startswith('"') and first.headers["cache-control"].startswith("public")

    again = await client.get("/.well-known/openid-configuration", headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    other = await client.get("/.well-known/openid-configuration", headers={"If-None-Match": '"x"'})
    assert other.status_code == 200 and other.json() == first.json()


async def test_the_jwks_etag_changes_with_the_keys(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    first = await client.get("/oauth2/jwks")
    etag, kids = first.headers["etag"], {k["kid"] for k in first.json()["keys"]}
    cached = await client.get("/oauth2/jwks", headers={"If-None-Match": etag})
    assert (cached.status_code, cached.content) == (304, b"")

    (revoked,) = kids
    assert run_cli(database_url, tmp_path, "keys", "revoke", revoked).returncode == 0
    await asyncio.sleep(1.1)  # a JWKS check less than a second old stands
    after = await client.get("/oauth2/jwks", headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.headers["etag"] != etag
    assert revoked not in {k["kid"] for k in json.loads(after.content)["keys"]}


async def test_the_apps_endpoints_keep_their_route_label_in_the_metrics(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/oauth2/jwks")
    await client.post("/oauth2/introspect", data={"token": "x"})
    answered = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    lines = answered.text.splitlines()
    assert any('route="/oauth2/jwks"' in line and 'status="200"' in line for line in lines)
    assert any('route="/oauth2/introspect"' in line and 'status="401"' in line for line in lines)
