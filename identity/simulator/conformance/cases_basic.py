"""The basic (order and instance) interfaces with real data (§4): a purchase, its retries, its
listing, renewals, an upgrade, and ids that do not exist. The instance's freeze, unfreeze and
release come later, with the sign-in probes that show their effect (`cases_state`)."""

from __future__ import annotations

import asyncio
import time

from identity.simulator.conformance.catalogue import Consequence as C
from identity.simulator.conformance.catalogue import spec
from identity.simulator.conformance.checks import (
    IN_PROGRESS,
    INVALID,
    NO_INSTANCE,
    SUCCESS,
    accepted,
    code_is,
    instance_id,
    lists,
    same_instance,
)
from identity.simulator.conformance.session import Case, Run
from identity.simulator.conformance.subjects import CONCURRENT, MAIN, basic, new_instance

CONCURRENT_CALLS = 5
POLL_SECONDS = 0.5

SPECS = [
    spec("newInstance", "§4.2", "newInstance for a new order line",
         "000000 (or 000004) with an instanceId of 1-64 characters", C.ORDERS),
    spec("newInstance.retry", "§4.2, §0.4", "the same order line again, with another businessId "
         "(a marketplace retry)", "000000 and the same instanceId", C.ORDERS),
    spec("newInstance.concurrent", "§4.2", f"{CONCURRENT_CALLS} newInstance calls for one new "
         "order line at once, each with its own businessId",
         "every one 000000, all with one and the same instanceId", C.ORDERS),
    spec("queryInstance", "§4.3", "queryInstance of the new instance",
         "000000; info lists it (an appInfo, if any, with a frontEndUrl of at most 512 "
         "characters)", C.ORDERS),
    spec("queryInstance.list", "§4.3", "queryInstance of two instances, comma-separated",
         "000000; info lists both", C.ORDERS),
    spec("queryInstance.over-100", "§4.3, §1.2", "queryInstance of 101 ids", "000002",
         C.SECURITY),
    spec("refreshInstance.trial-to-formal", "§4.4", "refreshInstance, scene TRIAL_TO_FORMAL, "
         "expireTime of 14 digits", "000000; queryInstance still lists the same instanceId",
         C.LIFECYCLE),
    spec("refreshInstance.renewal", "§4.4", "refreshInstance, scene RENEWAL, expireTime of 17 "
         "digits (as the official example)", "000000; queryInstance still lists the instance",
         C.LIFECYCLE),
    spec("refreshInstance.unsubscribe-renewal", "§4.4", "refreshInstance, scene "
         "UNSUBSCRIBE_RENEWAL_PERIOD", "000000; queryInstance still lists the instance",
         C.LIFECYCLE),
    spec("refreshInstance.unknown", "§4.4, §1.2", "refreshInstance of an instanceId that does "
         "not exist", "000003", C.LIFECYCLE),
    spec("upgradeInstance", "§4.7", "upgradeInstance with a new order",
         "000000; queryInstance still lists the same instanceId", C.LIFECYCLE),
    spec("updateInstanceStatus.unknown", "§4.5, §1.2", "updateInstanceStatus FREEZE of an "
         "instanceId that does not exist", "000003", C.LIFECYCLE),
    spec("releaseInstance.unknown", "§4.6, §1.2", "releaseInstance of an instanceId that does "
         "not exist", "000003", C.LIFECYCLE),
    spec("basic.unknown-activity", "§1.2, §4.0", "a validly signed basic call with activity "
         "\"deleteEverything\"", "000002", C.SECURITY),
]  # fmt: skip

_REFRESHES = [
    ("refreshInstance.trial-to-formal", "TRIAL_TO_FORMAL", "20991231235959"),
    ("refreshInstance.renewal", "RENEWAL", "20991231235959000"),
    ("refreshInstance.unsubscribe-renewal", "UNSUBSCRIBE_RENEWAL_PERIOD", "20990630235959"),
]


async def settled(run: Run, case: Case, instance: str) -> None:
    """After a `000004`: poll queryInstance, as KooGallery does, until it lists the instance
    (§0.4, §4.2), for at most the time limit."""
    limit = run.options.time_limit
    deadline = time.monotonic() + limit
    while True:
        reply = await run.line.basic(basic("queryInstance", instance))
        if lists(instance)(reply) is None:
            case.expect(reply, accepted, lists(instance))
            return
        if time.monotonic() > deadline:
            case.fail(
                f"000004, then queryInstance did not list the instance within {limit:g} s "
                f"(last: {reply.summary()})"
            )
            return
        await asyncio.sleep(POLL_SECONDS)


async def buy(run: Run, case: Case, key: str, business_id: str) -> bool:
    """newInstance for a run tenant's order; keeps its instanceId for the later cases."""
    order = run.subjects.tenant(key).order
    reply = await run.line.basic(new_instance(order, business_id))
    if not case.expect(reply, code_is(SUCCESS, IN_PROGRESS), instance_id):
        return False
    run.instances[key] = reply.value("instanceId")
    if reply.code == IN_PROGRESS:
        await settled(run, case, run.instances[key])
    return True


async def run_basic(run: Run) -> None:
    subjects, line = run.subjects, run.line
    order = subjects.main.order
    if case := run.case("newInstance"):
        await buy(run, case, MAIN, order.business_id or "")
    first = run.instance(MAIN)
    if case := run.case("newInstance.retry"):
        reply = await line.basic(new_instance(order, f"conf-{subjects.run_id}-main-b2"))
        case.expect(reply, code_is(SUCCESS, IN_PROGRESS), instance_id, same_instance(first))
    if case := run.case("newInstance.concurrent"):
        await _concurrent(run, case)
    if case := run.case("queryInstance"):
        case.expect(await line.basic(basic("queryInstance", first)), accepted, lists(first))
    if case := run.case("queryInstance.list"):
        other = run.instance(CONCURRENT)
        reply = await line.basic(basic("queryInstance", f"{first},{other}"))
        case.expect(reply, accepted, lists(first, other))
    if case := run.case("queryInstance.over-100"):
        ids = ",".join(subjects.unknown_id(f"q{n}") for n in range(101))
        case.expect(await line.basic(basic("queryInstance", ids)), code_is(INVALID))
    for number, (name, scene, expire) in enumerate(_REFRESHES, 1):
        if case := run.case(name):
            renewal = f"{order.order_id}-R{number}"
            body = basic(
                "refreshInstance", first, scene=scene, orderId=renewal,
                orderLineId=f"{renewal}-000001", productId="OFFI-CONFORMANCE", expireTime=expire,
            )  # fmt: skip
            if case.expect(await line.basic(body), accepted):
                case.expect(await line.basic(basic("queryInstance", first)), accepted, lists(first))
    await _unknown_and_upgrade(run, first)


async def _concurrent(run: Run, case: Case) -> None:
    """Concurrent duplicates must meet in one instance, not race to two (§4.2)."""
    subjects = run.subjects
    order = subjects.tenant(CONCURRENT).order
    replies = await asyncio.gather(
        *(
            run.line.basic(new_instance(order, f"conf-{subjects.run_id}-c{n}"))
            for n in range(CONCURRENT_CALLS)
        )
    )
    ids = [r.value("instanceId") for r in replies]
    first = next((i for i in ids if isinstance(i, str)), None)
    case.expect_all(list(replies), code_is(SUCCESS, IN_PROGRESS), instance_id, same_instance(first))
    if first is not None:
        run.instances[CONCURRENT] = first


async def _unknown_and_upgrade(run: Run, first: str) -> None:
    subjects, line = run.subjects, run.line
    order = subjects.main.order
    if case := run.case("refreshInstance.unknown"):
        body = basic(
            "refreshInstance", subjects.unknown_id("refresh"), scene="RENEWAL",
            orderId=f"{order.order_id}-R9", orderLineId=f"{order.order_id}-R9-000001",
            expireTime="20991231235959",
        )  # fmt: skip
        case.expect(await line.basic(body), code_is(NO_INSTANCE))
    if case := run.case("upgradeInstance"):
        upgrade = f"{order.order_id}-UP"
        body = basic("upgradeInstance", first, orderId=upgrade, orderLineId=f"{upgrade}-000001")
        if case.expect(await line.basic(body), accepted):
            case.expect(await line.basic(basic("queryInstance", first)), accepted, lists(first))
    if case := run.case("updateInstanceStatus.unknown"):
        body = basic("updateInstanceStatus", subjects.unknown_id("status"), status="FREEZE")
        case.expect(await line.basic(body), code_is(NO_INSTANCE))
    if case := run.case("releaseInstance.unknown"):
        body = basic("releaseInstance", subjects.unknown_id("release"))
        case.expect(await line.basic(body), code_is(NO_INSTANCE))
    if case := run.case("basic.unknown-activity"):
        body = {"activity": "deleteEverything", "instanceId": first, "testFlag": "0"}
        case.expect(await line.basic(body), code_is(INVALID))
