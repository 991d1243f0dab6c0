"""Signatures (§2.1-§2.4) and limits: every way the marketplace's signature may legitimately
look, every way it can be wrong, replayed or stale, and bodies or fields larger than a real
call's. Basic cases sign a queryInstance of the run's instance, kit cases a tenantSync flag 2
that changes nothing: a wrongly accepted call does no harm."""

from __future__ import annotations

import time

from identity.marketplace.signing import Kind
from identity.simulator.conformance.catalogue import Consequence as C
from identity.simulator.conformance.catalogue import spec
from identity.simulator.conformance.checks import (
    AUTHENTICATION,
    INVALID,
    Check,
    accepted,
    code_is,
    refused,
    refused_or_http,
)
from identity.simulator.conformance.exchange import Request, Signing
from identity.simulator.conformance.session import Run
from identity.simulator.conformance.subjects import MAIN, auth_sync, basic, kit, tenant_sync
from identity.simulator.sender import user_object
from identity.simulator.wire import encode_body

STALE_MS = 5 * 60 * 1000
"""Five minutes: far outside the 60 s window (§2.4), whatever the clocks' skew."""

_VARIANTS: list[tuple[str, str, str, str]] = [
    # (name, what is sent, expected, section)
    ("lowercase-hex", "a valid signature in lower-case hex, as the demo writes it", "000000",
     "{s}"),
    ("uppercase-hex", "a valid signature in upper-case hex, as the docs' examples", "000000",
     "{s}"),
    ("canonical-payload", "body members in reverse order{raw}, signed over the canonical payload "
     "(top level sorted, compact)", "000000", "§2.3"),
    ("wrong-key", "signed with a key that is neither access key", "000001", "{s}, §2.4"),
    ("swapped-keys", "signed with the other interface type's key", "000001", "§0.3, {s}"),
    ("wrong-formula", "signed with the other interface type's formula", "000001",
     "§2.1, §2.2"),
    ("missing-signature", "no signature", "000001", "§2.4"),
    ("missing-timestamp", "no timestamp", "000002", "§2.4"),
    ("missing-nonce", "no nonce", "000002", "§2.4"),
    ("old-timestamp", "a correct signature over a timestamp 5 minutes old", "000002", "§2.4"),
    ("replayed-nonce", "a call accepted once, sent again unchanged (nonce, timestamp, signature)",
     "the first 000000, the replay refused (000001 recommended)", "§2.4"),
]  # fmt: skip
_SECTIONS = {"basic": "§2.1", "kit": "§2.2"}
_RAW = {"basic": "", "kit": ", the enterprise's non-ASCII name as raw UTF-8 (not \\u-escaped)"}
"""Only the kit body (tenantSync) holds non-ASCII text: a queryInstance's fields are ids."""

SPECS = [
    spec(f"signing.{name}.{kind}", section.format(s=_SECTIONS[kind]),
         f"{kind}: {sent.format(raw=_RAW[kind])}", expected, C.SECURITY)
    for name, sent, expected, section in _VARIANTS
    for kind in ("basic", "kit")
] + [
    spec("limits.body-too-large", "§0.3, §1.2", "a signed debug allOrgSync larger than "
         "--body-limit", "refused (any code but 000000, or HTTP 413), in time", C.SECURITY),
    spec("limits.long-field.basic", "§4.2, §1.2", "newInstance with an orderId of 65 characters",
         "000002", C.SECURITY),
    spec("limits.long-field.kit", "§3.1, §1.2", "tenantSync with a tenantId of 65 characters",
         "000002", C.SECURITY),
    spec("limits.long-field.nested", "§3.3, §1.2", "authSync with a userName of 65 characters",
         "000002", C.SECURITY),
]  # fmt: skip


def _request(run: Run, kind: Kind, signing: Signing, reorder: bool = False) -> Request:
    """A harmless call of `kind`: a queryInstance of the run's instance, or a tenantSync flag 2
    that changes nothing. `reorder`: its members in reverse order."""
    instance = run.instance(MAIN)
    if kind is Kind.BASIC:
        body = basic("queryInstance", instance)
    else:
        body = tenant_sync(run.subjects.main, instance, run.stamp(), run.domain, 2)
    if reorder:
        body = dict(reversed(list(body.items())))
    if kind is Kind.BASIC:
        return run.line.basic_request(body, signing)
    return run.line.kit_request("tenantSync", body, signing)


async def run_signing(run: Run) -> None:
    wrong = f"conformance-wrong-key-{run.subjects.run_id}"
    stale = str(int(time.time() * 1000) - STALE_MS)
    for kind in (Kind.BASIC, Kind.KIT):
        other = Kind.KIT if kind is Kind.BASIC else Kind.BASIC
        denied = code_is(AUTHENTICATION)
        cases: list[tuple[str, Signing, Check]] = [
            ("lowercase-hex", Signing(), accepted),
            ("uppercase-hex", Signing(upper=True), accepted),
            ("canonical-payload", Signing(), accepted),
            ("wrong-key", Signing(key=wrong), denied),
            ("swapped-keys", Signing(key=run.line.keys[other]), denied),
            ("wrong-formula", Signing(formula=other), denied),
            ("missing-signature", Signing(drop=("signature",)), denied),
            ("missing-timestamp", Signing(drop=("timestamp",)), code_is(INVALID)),
            ("missing-nonce", Signing(drop=("nonce",)), code_is(INVALID)),
            ("old-timestamp", Signing(timestamp=stale), code_is(INVALID)),
        ]
        for name, signing, check in cases:
            if case := run.case(f"signing.{name}.{kind}"):
                request = _request(run, kind, signing, reorder=name == "canonical-payload")
                case.expect(await run.line.send(request), check)
        if case := run.case(f"signing.replayed-nonce.{kind}"):
            request = _request(run, kind, Signing())
            if case.expect(await run.line.send(request), accepted):
                case.expect(await run.line.send(request), refused)
    await _limits(run)


def oversized(run: Run) -> bytes:
    """A debug allOrgSync just over the body limit: a long but well-formed department list."""
    tenant_id = f"conf-{run.subjects.run_id}-big"
    body = kit(tenant_id, "", run.stamp(), test=1, orgInfoList=[])
    overhead = len(encode_body(body))
    entry = {"orgCode": "d000000", "orgName": "部门 Department 000000", "parentCode": ""}
    count = (run.options.body_limit - overhead) // (len(encode_body(entry)) + 1) + 2
    body["orgInfoList"] = [
        {"orgCode": f"d{n:06d}", "orgName": f"部门 Department {n:06d}", "parentCode": ""}
        for n in range(count)
    ]
    raw = encode_body(body)
    assert len(raw) > run.options.body_limit
    return raw


async def _limits(run: Run) -> None:
    line, tenant, instance = run.line, run.subjects.main, run.instance(MAIN)
    if case := run.case("limits.body-too-large"):
        reply = await line.kit("allOrgSync", oversized(run))
        case.expect(reply, refused_or_http(run.options.time_limit, 413), plain=True)
    too_long = "9" * 65
    if case := run.case("limits.long-field.basic"):
        order = {"activity": "newInstance", "orderId": f"CS{too_long}"[:65],
                "orderLineId": f"CS-CONF-{run.subjects.run_id}-L-1",
                "businessId": f"conf-{run.subjects.run_id}-long", "testFlag": "0"}  # fmt: skip
        case.expect(await line.basic(order), code_is(INVALID))
    if case := run.case("limits.long-field.kit"):
        body = tenant_sync(tenant, instance, run.stamp(), run.domain, 1, tenantId=too_long)
        case.expect(await line.kit("tenantSync", body), code_is(INVALID))
    if case := run.case("limits.long-field.nested"):
        app_id = run.subjects.app_id
        body = auth_sync(tenant, instance, run.stamp(), app_id, [tenant.member("dave")], 1)
        body["userList"] = [user_object(tenant.member("dave")) | {"userName": "u" * 65}]
        case.expect(await line.kit("authSync", body), code_is(INVALID))
