"""The kit interfaces binding an enterprise and syncing its directory (§3), in every documented
shape, each repeated where the contract asks for idempotency (§3.0). Member states whose effect
only a sign-in shows (disabled, cancelled, deleted, an older sync) are in `cases_state`."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any

from identity.simulator.conformance.catalogue import Consequence as C
from identity.simulator.conformance.catalogue import Need, spec
from identity.simulator.conformance.checks import accepted, refused, refused_or_http
from identity.simulator.conformance.exchange import Reply
from identity.simulator.conformance.session import Run
from identity.simulator.conformance.subjects import (
    MAIN,
    all_org_sync,
    application_sync,
    auth_sync,
    kit,
    members_of,
    tenant_sync,
)

CONCURRENT_SYNCS = 5

SPECS = [
    spec("tenantSync.add", "§3.1", "tenantSync flag 1: a new enterprise bound to the instance",
         "000000", C.DIRECTORY),
    spec("tenantSync.repeat", "§3.0, §3.1", "the same tenantSync body again", "000000",
         C.DIRECTORY),
    spec("tenantSync.modify", "§3.1", "tenantSync flag 2: the enterprise renamed, then renamed "
         "back", "000000, both times", C.DIRECTORY),
    spec("applicationSync.bad-secret", "§3.2, §2.7", "applicationSync flag 1 whose clientSecret "
         "does not decrypt, the first for the enterprise and app (a repeat of an accepted one "
         "may be acknowledged, §3.0)", "refused: any code but 000000 (the demo answers 000101)",
         C.DIRECTORY),
    spec("applicationSync.add", "§3.2, §2.7", "applicationSync flag 1, clientSecret RSA-OAEP "
         "encrypted with the seller's public key", "000000", C.DIRECTORY, Need.PUBLIC_KEY),
    spec("allOrgSync.array", "§3.5", "allOrgSync, orgInfoList an array, a child listed before "
         "its parent", "000000", C.DIRECTORY),
    spec("allOrgSync.string", "§3.5", "allOrgSync, orgInfoList a string with unquoted keys, as "
         "in the V2 example", "000000", C.DIRECTORY),
    spec("singleOrgSync.add", "§3.4", "singleOrgSync flag 1: a new department", "000000",
         C.DIRECTORY),
    spec("singleOrgSync.repeat", "§3.0, §3.4", "the same singleOrgSync body again", "000000",
         C.DIRECTORY),
    spec("singleOrgSync.rename", "§3.4", "singleOrgSync flag 2: the department renamed",
         "000000", C.DIRECTORY),
    spec("singleOrgSync.move", "§3.4", "singleOrgSync flag 2: the department under another "
         "parent", "000000", C.DIRECTORY),
    spec("singleOrgSync.delete", "§3.4", "singleOrgSync flag 0", "000000", C.DIRECTORY),
    spec("singleOrgSync.delete-again", "§3.0, §3.4", "singleOrgSync flag 0 of the deleted "
         "department", "000000", C.DIRECTORY),
    spec("authSync.add-single", "§3.3", "authSync flag 1, one user (role admin)", "000000",
         C.DIRECTORY),
    spec("authSync.add-multi", "§3.3", "authSync flag 1, three users, one with every optional "
         "field", "000000", C.DIRECTORY),
    spec("authSync.repeat", "§3.0, §3.3", "the same authSync body again", "000000", C.DIRECTORY),
    spec("authSync.modify", "§3.3", "authSync flag 2: a user's role, department and position "
         "changed", "000000", C.DIRECTORY),
    spec("authSync.concurrent", "§3.0", f"{CONCURRENT_SYNCS} identical authSync flag 1 calls "
         "at once", "every one 000000", C.DIRECTORY),
    spec("kit.unknown-interface", "§1.2, §3.0",
         "a validly signed POST to /produceAPI/v2/unknownSync",
         "refused: any code but 000000, or HTTP 404 or 405", C.SECURITY),
]  # fmt: skip


def org_literal(orgs: list[dict[str, str]]) -> str:
    """orgInfoList as the V2 example sends it: a string with unquoted keys (§3.5)."""
    items = (
        "{" + ", ".join(f"{k}:{json.dumps(v, ensure_ascii=False)}" for k, v in o.items()) + "}"
        for o in orgs
    )
    return "[" + ",".join(items) + "]"


async def run_kit(run: Run) -> None:
    await _bind(run)
    await _departments(run)
    await _members(run)
    if case := run.case("kit.unknown-interface"):
        tenant = run.subjects.main
        body = kit(tenant.tenant_id, run.instance(MAIN), run.stamp(), flag=1)
        reply = await run.line.kit("unknownSync", body)
        case.expect(reply, refused_or_http(run.options.time_limit, 404, 405), plain=True)


async def _bind(run: Run) -> None:
    """tenantSync, applicationSync, allOrgSync: the buyer binds the app (§0.4)."""
    tenant, line, instance = run.subjects.main, run.line, run.instance(MAIN)
    added = tenant_sync(tenant, instance, run.stamp(), run.domain, 1)
    if case := run.case("tenantSync.add"):
        case.expect(await line.kit("tenantSync", added), accepted)
    if case := run.case("tenantSync.repeat"):
        case.expect(await line.kit("tenantSync", added), accepted)
    if case := run.case("tenantSync.modify"):
        renamed = tenant_sync(tenant, instance, run.stamp(), run.domain, 2, name=tenant.name + "!")
        if case.expect(await line.kit("tenantSync", renamed), accepted):
            back = tenant_sync(tenant, instance, run.stamp(), run.domain, 2)
            case.expect(await line.kit("tenantSync", back), accepted)
    key = run.options.public_key
    if case := run.case("applicationSync.bad-secret"):
        body = application_sync(tenant, instance, run.stamp(), run.subjects.app_id, None)
        body["clientSecret"] = base64.b64encode(secrets.token_bytes(384)).decode()
        case.expect(await line.kit("applicationSync", body), refused)
    if case := run.case("applicationSync.add"):
        body = application_sync(tenant, instance, run.stamp(), run.subjects.app_id, key)
        case.expect(await line.kit("applicationSync", body), accepted)
    if case := run.case("allOrgSync.array"):
        case.expect(
            await line.kit("allOrgSync", all_org_sync(tenant, instance, run.stamp())), accepted
        )
    if case := run.case("allOrgSync.string"):
        body = all_org_sync(tenant, instance, run.stamp())
        body["orgInfoList"] = org_literal(body["orgInfoList"])
        case.expect(await line.kit("allOrgSync", body), accepted)


async def _departments(run: Run) -> None:
    """A department's life: added (twice), renamed, moved, deleted (twice) (§3.4)."""
    tenant, instance = run.subjects.main, run.instance(MAIN)
    hq, rd = (tenant.departments[1].org_code, tenant.departments[0].org_code)
    qa: dict[str, Any] = {
        "orgCode": f"{tenant.tenant_id}-qa",
        "orgName": "质量部 QA",
        "parentCode": hq,
    }
    renamed = qa | {"orgName": "质量保障部 Quality"}
    moved = renamed | {"parentCode": rd}

    def body(department: dict[str, Any], flag: int) -> dict[str, Any]:
        return kit(tenant.tenant_id, instance, run.stamp(), **department, flag=flag)

    added = body(qa, 1)
    steps = [
        ("singleOrgSync.add", added),
        ("singleOrgSync.repeat", added),
        ("singleOrgSync.rename", body(renamed, 2)),
        ("singleOrgSync.move", body(moved, 2)),
        ("singleOrgSync.delete", body(moved, 0)),
        ("singleOrgSync.delete-again", body(moved, 0)),
    ]
    for name, sent in steps:
        if case := run.case(name):
            case.expect(await run.line.kit("singleOrgSync", sent), accepted)


async def _members(run: Run) -> None:
    """Members authorised one and several at a time, repeated, modified, and at once (§3.3)."""
    tenant, instance, app_id = run.subjects.main, run.instance(MAIN), run.subjects.app_id
    line = run.line
    if case := run.case("authSync.add-single"):
        body = auth_sync(tenant, instance, run.stamp(), app_id, members_of(tenant, "alice"), 1)
        case.expect(await line.kit("authSync", body), accepted)
    several = members_of(tenant, "bob", "carol", "dave")
    added = auth_sync(tenant, instance, run.stamp(), app_id, several, 1)
    if case := run.case("authSync.add-multi"):
        case.expect(await line.kit("authSync", added), accepted)
    if case := run.case("authSync.repeat"):
        case.expect(await line.kit("authSync", added), accepted)
    if case := run.case("authSync.modify"):
        ops = tenant.departments[2].org_code
        bob = tenant.member("bob").model_copy(
            update={"role": "admin", "org_code": ops, "position": "经理 Manager"}
        )
        body = auth_sync(tenant, instance, run.stamp(), app_id, [bob], 2)
        case.expect(await line.kit("authSync", body), accepted)
    if case := run.case("authSync.concurrent"):
        body = auth_sync(tenant, instance, run.stamp(), app_id, members_of(tenant, "alice"), 1)
        replies: list[Reply] = await asyncio.gather(
            *(line.kit("authSync", body) for _ in range(CONCURRENT_SYNCS))
        )
        case.expect_all(replies, accepted)
