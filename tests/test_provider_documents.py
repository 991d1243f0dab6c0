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


async def test_a_document_at_hand_is_answered_as_the_route_answers_it(
    client: httpx.AsyncClient,
) -> None:
    """The first JWKS request reads the keys through the route; the next, within a second,
    is answered from the keys at hand: the same bytes and the same headers, the security
    headers and the caller's request id included."""
    for path in ("/oauth2/jwks", "/.well-known/openid-configuration"):
        first, second = [
            await client.get(path, headers={"X-Request-ID": f"doc-{n}"}) for n in (1, 2)
        ]
        assert second.content == first.content
        assert (first.headers["x-request-id"], second.headers["x-request-id"]) == (
            "doc-1",
            "doc-2",
        )
        kept = {"date", "x-request-id"}
        assert {k: v for k, v in first.headers.items() if k not in kept} == {
            k: v for k, v in second.headers.items() if k not in kept
        }
        assert second.headers["x-frame-options"] == "DENY"

        head = await client.head(path)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == str(len(first.content))
        assert (await client.get(path, headers={"If-None-Match": "*"})).status_code == 304

        refused = await client.post(path)
        assert refused.status_code == 405 and refused.json()["error"] == "method_not_allowed"
        assert set(refused.headers["allow"].split(", ")) == {"GET", "HEAD"}

    answered = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    counted = [line for line in answered.text.splitlines() if "identity_http_requests" in line]
    for route in ("/oauth2/jwks", "/.well-known/openid-configuration"):
        for method, status in (("HEAD", "200"), ("GET", "304"), ("POST", "405")):
            labels = f'method="{method}",route="{route}",status="{status}"'
            assert any(labels in line for line in counted), labels
