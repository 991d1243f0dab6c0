"""scim2-tester, the SCIM compliance checker, against identity as a process, as an app's
backend would reach it (a directory token of the client-credentials grant).

identity's SCIM is read only: the checker's `crud` and `patch` checks (create, then read,
replace, patch or delete what they created, and the attribute-selection checks built on a
created resource) cannot run against it and are left out by tag;
`test_writes_are_refused_as_unsupported` shows what a creation gets instead. Everything else
it runs (discovery: ServiceProviderConfig, ResourceTypes, Schemas and their methods; misc: an
unknown URL) must pass."""

from __future__ import annotations

import httpx2 as httpx
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from identity.db import Database
from tests.helpers.oidc_app import directory_reader
from tests.helpers.simulator_world import ACME
from tests.helpers.stack import Stack

INCLUDED = {"discovery", "misc"}
WRITING = {"crud", "patch"}
"""The tags left out: each of their checks creates a resource first, or patches one, and
identity's directory is the marketplace's, written only by its syncs."""
PASSED = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}


async def _token(acme: Stack, db: Database) -> str:
    added = await directory_reader(db, "Checker")
    assert added.secret is not None
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            acme.identity + "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(added.client_id, added.secret),
        )
    return str(answer.json()["access_token"])


def _client(acme: Stack, token: str) -> SyncSCIMClient:
    http = httpx.Client(
        base_url=f"{acme.identity}/scim/v2/{ACME['tenantId']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    return SyncSCIMClient(http)


async def test_every_check_the_checker_runs_passes(acme: Stack, db: Database) -> None:
    scim = _client(acme, await _token(acme, db))
    try:
        results = check_server(scim, include_tags=INCLUDED)
    finally:
        scim.client.close()
    ran = [r for r in results if r.status is not Status.SKIPPED]
    skipped = {(r.title, r.resource_type) for r in results if r.status is Status.SKIPPED}
    failed = [(r.title, r.resource_type, r.status.name, r.reason) for r in ran
              if r.status not in PASSED]  # fmt: skip
    assert failed == [], failed
    assert len(ran) >= 10, ran  # the discovery checks, for both resource types
    # what was left out is the crud checks, each of which starts by creating a resource
    assert {title for title, _ in skipped} >= {"object_creation", "object_query"}
    assert all(any(t.split(":")[0] in WRITING for t in r.tags)
               for r in results if r.status is Status.SKIPPED), skipped  # fmt: skip
    print(f"scim2-tester: {len(ran)} checks ran and passed, {len(skipped)} writing checks skipped")


async def test_writes_are_refused_as_unsupported(acme: Stack, db: Database) -> None:
    """What the excluded checks would meet: 501, the SCIM error for an unsupported operation."""
    token = await _token(acme, db)
    async with httpx.AsyncClient(
        base_url=f"{acme.identity}/scim/v2/{ACME['tenantId']}",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"}
        created = await http.post("/Users", json=user)
        assert created.status_code == 501, created.text
        assert created.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        listed = (await http.get("/Users", params={"filter": 'userName eq "x@acme"'})).json()
        assert listed["totalResults"] == 0
