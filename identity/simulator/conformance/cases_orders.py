"""The order-details path (§4.2): newInstance names only the order, so an endpoint may read the
rest from the marketplace's query-order API before it provisions. Run with --order-ak and
--order-sk, the kit answers that API itself (`probe`, the simulator's `order_api`, checking the
APIG signature with that key pair) for the run's orders, and sees which ones were asked for.
The endpoint must then be configured to ask the kit's address instead of the marketplace's."""

from __future__ import annotations

import asyncio
import time

from identity.simulator.conformance.cases_basic import POLL_SECONDS, buy
from identity.simulator.conformance.catalogue import Consequence as C
from identity.simulator.conformance.catalogue import Need, spec
from identity.simulator.conformance.checks import IN_PROGRESS, lists, refused
from identity.simulator.conformance.session import Case, Run
from identity.simulator.conformance.subjects import ORDERED, basic, new_instance

SPECS = [
    spec("order.confirmed", "§4.2", "newInstance for an order the kit's query-order API knows",
         "the endpoint asks the API for that order line (a signed query, answered), then "
         "000000 (or 000004) with an instanceId", C.ORDERS, Need.ORDERS),
    spec("order.unknown", "§4.2", "newInstance for an order the query-order API does not know",
         "the endpoint asks the API, then refuses: any code but 000000, or 000004 and then "
         "queryInstance does not list the instance within the time limit (nothing provisioned)",
         C.ORDERS, Need.ORDERS),
]  # fmt: skip


def _asked(run: Run, case: Case, order_id: str, order_line_id: str) -> None:
    assert run.centre is not None  # ORDERS cases run only with the order API served
    statuses = run.centre.asked_for(order_id, order_line_id)
    if not statuses:
        case.fail(f"the endpoint never asked the query-order API for {order_id}")
    elif 200 not in statuses:
        case.fail(f"the query-order API refused the endpoint's signature (HTTP {statuses[-1]})")


async def run_orders(run: Run) -> None:
    if case := run.case("order.confirmed"):
        order = run.subjects.tenant(ORDERED).order
        if await buy(run, case, ORDERED, order.business_id or ""):
            _asked(run, case, order.order_id, order.order_line_id)
    if case := run.case("order.unknown"):
        unknown = run.subjects.unknown_order()
        business_id = f"conf-{run.subjects.run_id}-u1"
        reply = await run.line.basic(new_instance(unknown, business_id))
        if reply.code == IN_PROGRESS:
            if not case.expect(reply):
                return
            await _never_listed(run, case, str(reply.value("instanceId") or business_id))
        elif not case.expect(reply, refused):
            return
        _asked(run, case, unknown.order_id, unknown.order_line_id)


async def _never_listed(run: Run, case: Case, instance: str) -> None:
    """After a `000004` for an order the API does not know: the endpoint may still be checking
    and refuse later (§4.2), but it must never provision it. KooGallery polls queryInstance; so
    does the kit, for the time limit, and fails the case if the instance appears."""
    deadline = time.monotonic() + run.options.time_limit
    while time.monotonic() <= deadline:
        reply = await run.line.basic(basic("queryInstance", instance))
        if lists(instance)(reply) is None:
            case.fail(f"000004, then queryInstance listed {instance}: an unknown order provisioned")
            return
        await asyncio.sleep(POLL_SECONDS)
