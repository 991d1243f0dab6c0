"""The V1 calls, for endpoints that still take them (run with --v1-key): a basic call is a GET
of the production address with `timeStamp` and `authToken` in the query, a kit call a POST to
`/produceAPI/{name}` with the `authToken` header and V1's shapes, and every answer must carry a
`Body-Sign` that is the key's over its exact bytes (§0.2, §2.5, §2.6, §3.6, §4.8). The calls
are the simulator's V1 forms of V2 bodies (`v1_wire`), for an enterprise of their own."""

from __future__ import annotations

from identity.simulator.conformance.catalogue import Consequence as C
from identity.simulator.conformance.catalogue import Need, spec
from identity.simulator.conformance.checks import (
    AUTHENTICATION,
    accepted,
    body_signed,
    code_is,
    instance_id,
    lists,
)
from identity.simulator.conformance.session import Run
from identity.simulator.conformance.subjects import (
    LEGACY,
    all_org_sync,
    application_sync,
    auth_sync,
    basic,
    members_of,
    new_instance,
    tenant_sync,
)

_SIGNED = "; Body-Sign the V1 key's over the answer's bytes"
_GET, _POST = "GET with authToken", "POST /produceAPI/{name} with the authToken header"

SPECS = [
    spec("v1.newInstance", "§4.8, §2.6", f"newInstance of a trial (trialFlag 1) as a {_GET} "
         "(an order without lines)",
         f"000000 with an instanceId{_SIGNED}", C.LEGACY, Need.V1),
    spec("v1.queryInstance", "§4.8, §2.6", f"queryInstance as a {_GET}",
         f"000000 listing the instance{_SIGNED}", C.LEGACY, Need.V1),
    spec("v1.tenantSync", "§3.6, §2.6", f"tenantSync flag 1 as a {_POST}", f"000000{_SIGNED}",
         C.LEGACY, Need.V1),
    spec("v1.applicationSync", "§3.6, §2.7", f"applicationSync flag 1 as a {_POST}",
         f"000000{_SIGNED}", C.LEGACY, Need.V1, Need.PUBLIC_KEY),
    spec("v1.allOrgSync", "§3.6", "allOrgSync with orgInfo, a string of JSON using name",
         f"000000{_SIGNED}", C.LEGACY, Need.V1),
    spec("v1.authSync", "§3.6, §3.3", "authSync with userList a string of JSON, the users' "
         "extension objects", f"000000{_SIGNED}", C.LEGACY, Need.V1),
    spec("v1.refreshInstance", "§4.8", "refreshInstance with trialToFormal=1: the trial "
         "becomes formal",
         f"000000{_SIGNED}", C.LEGACY, Need.V1),
    spec("v1.upgrade", "§4.8", "upgrade (V1's name) with a new order", f"000000{_SIGNED}",
         C.LEGACY, Need.V1),
    spec("v1.expireInstance", "§4.8, §0.2", "expireInstance (V1's freeze)", f"000000{_SIGNED}",
         C.LEGACY, Need.V1),
    spec("v1.releaseInstance", "§4.8", "releaseInstance", f"000000{_SIGNED}", C.LEGACY, Need.V1),
    spec("v1.wrong-token.basic", "§2.6", "a basic GET whose authToken is another key's",
         f"000001{_SIGNED}", C.SECURITY, Need.V1),
    spec("v1.wrong-token.kit", "§2.6", "a kit POST whose authToken is another key's",
         f"000001{_SIGNED}", C.SECURITY, Need.V1),
]  # fmt: skip


async def run_legacy(run: Run) -> None:
    signed = body_signed(run.options.v1_key or "")  # without a key, every case is skipped
    tenant, line, app_id = run.subjects.tenant(LEGACY), run.line, run.subjects.app_id
    order = tenant.order
    if case := run.case("v1.newInstance"):
        body = new_instance(
            order, order.business_id or "", customerId=f"conf-{run.subjects.run_id}-buyer",
            customerName="conformance", productId="OFFI-CONFORMANCE", skuCode="conformance-sku",
            periodType="year", periodNumber="1", expireTime="20991231235959", trialFlag="1",
        )  # fmt: skip
        reply = await line.v1_basic(body)
        if case.expect(reply, accepted, instance_id, signed):
            run.instances[LEGACY] = reply.value("instanceId")
    instance = run.instance(LEGACY)
    if case := run.case("v1.queryInstance"):
        reply = await line.v1_basic(basic("queryInstance", instance))
        case.expect(reply, accepted, lists(instance), signed)
    kit_calls = [
        ("v1.tenantSync", "tenantSync", tenant_sync(tenant, instance, run.stamp(), run.domain, 1)),
        ("v1.applicationSync", "applicationSync",
         application_sync(tenant, instance, run.stamp(), app_id, run.options.public_key)),
        ("v1.allOrgSync", "allOrgSync", all_org_sync(tenant, instance, run.stamp())),
        ("v1.authSync", "authSync", auth_sync(tenant, instance, run.stamp(), app_id,
                                              members_of(tenant, "alice", "bob"), 1)),
    ]  # fmt: skip
    for name, interface, body in kit_calls:
        if case := run.case(name):
            case.expect(await line.v1_kit(interface, body), accepted, signed)
    renewal = f"{order.order_id}-R1"
    basic_calls = [
        ("v1.refreshInstance", basic("refreshInstance", instance, scene="TRIAL_TO_FORMAL",
         orderId=renewal, orderLineId=renewal, expireTime="20991231235959")),
        ("v1.upgrade", basic("upgradeInstance", instance, orderId=f"{order.order_id}-UP",
         orderLineId=f"{order.order_id}-UP", productId="OFFI-CONFORMANCE",
         skuCode="conformance-sku-2")),
        ("v1.expireInstance", basic("updateInstanceStatus", instance, status="FREEZE")),
        ("v1.releaseInstance", basic("releaseInstance", instance, orderId=order.order_id)),
    ]  # fmt: skip
    for name, body in basic_calls:
        if case := run.case(name):
            case.expect(await line.v1_basic(body), accepted, signed)
    wrong = f"conformance-wrong-v1-key-{run.subjects.run_id}"
    if case := run.case("v1.wrong-token.basic"):
        reply = await line.v1_basic(basic("queryInstance", instance), key=wrong)
        case.expect(reply, code_is(AUTHENTICATION), signed)
    if case := run.case("v1.wrong-token.kit"):
        body = tenant_sync(tenant, instance, run.stamp(), run.domain, 1)
        case.expect(
            await line.v1_kit("tenantSync", body, key=wrong), code_is(AUTHENTICATION), signed
        )
