"""The order-details path (§4.2): newInstance names only the order, so an endpoint may read the
rest from the marketplace's query-order API before it provisions. Run with --order-ak and
--order-sk, the kit answers that API itself (`probe`, the simulator's `order_api`, checking the
APIG signature with that key pair) for the run's orders, and sees which ones were asked for.
The endpoint must then be configured to ask the kit's address instead of the marketplace's."""

from __future__ import annotations

from identity.simulator.conformance.cases_basic import buy
from identity.simulator.conformance.catalogue import Consequence as C
from identity.simulator.conformance.catalogue import Need, spec
from identity.simulator.conformance.checks import refused
from identity.simulator.conformance.session import Case, Run
from identity.simulator.conformance.subjects import ORDERED, new_instance

SPECS = [
    spec("order.confirmed", "§4.2", "newInstance for an order the kit's query-order API knows",
         "the endpoint asks the API for that order line (a signed query, answered), then "
         "000000 (or 000004) with an instanceId", C.ORDERS, Need.ORDERS),
    spec("order.unknown", "§4.2", "newInstance for an order the query-order API does not know",
         "the endpoint asks the API, then refuses: any code but 000000 (nothing provisioned)",
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
        reply = await run.line.basic(new_instance(unknown, f"conf-{run.subjects.run_id}-u1"))
        if case.expect(reply, refused):
            _asked(run, case, unknown.order_id, unknown.order_line_id)
