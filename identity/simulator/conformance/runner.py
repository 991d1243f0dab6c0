"""One run of every case, in the order a product's life brings them: the purchase (basic), the
binding and directory (kit), signatures and limits, debug calls, member and instance states with
their sign-in probes, the seller's test tenant, then V1 and the order-details path.

The order matters: later cases use the instance and the enterprise earlier ones created, as
the marketplace's calls do. A case whose predecessor failed still runs, with what there is
(`Run.instance`), and fails on its own account.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import httpx2 as httpx

from identity.simulator.conformance import (
    cases_basic,
    cases_debug,
    cases_kit,
    cases_legacy,
    cases_orders,
    cases_signing,
    cases_state,
)
from identity.simulator.conformance.catalogue import Spec
from identity.simulator.conformance.exchange import Line
from identity.simulator.conformance.probe import AuthCentre
from identity.simulator.conformance.session import Options, Result, Run
from identity.simulator.conformance.subjects import Subjects
from identity.simulator.order_api import DEMO_KEY

Group = Callable[[Run], Awaitable[None]]

GROUPS: list[tuple[list[Spec], Group]] = [
    (cases_basic.SPECS, cases_basic.run_basic),
    (cases_kit.SPECS, cases_kit.run_kit),
    (cases_signing.SPECS, cases_signing.run_signing),
    (cases_debug.SPECS, cases_debug.run_debug),
    (cases_state.SPECS, cases_state.run_state),
    (cases_legacy.SPECS, cases_legacy.run_legacy),
    (cases_orders.SPECS, cases_orders.run_orders),
]


def catalogue() -> dict[str, Spec]:
    """Every case by name, in the order the run meets them within each group."""
    found: dict[str, Spec] = {}
    for specs, _ in GROUPS:
        for entry in specs:
            if entry.name in found:
                raise ValueError(f"two cases are named {entry.name}")
            found[entry.name] = entry
    return found


async def run_all(options: Options, run_id: str | None = None) -> list[Result]:
    """Every case against `options.target`; the auth centre (and order API) served meanwhile
    when the options ask for them."""
    subjects = Subjects.make(options.app_id, run_id)
    async with AsyncExitStack() as stack:
        centre = None
        if options.serves_auth_centre:
            centre = AuthCentre(
                subjects.scenario,
                options.sso_callback,
                host=options.auth_centre_host,
                port=options.auth_centre_port,
                public_url=options.auth_centre_url,
                order_key=options.order_key or DEMO_KEY,
                time_limit=options.time_limit,
                probe_url=options.probe_url,
            )
            await stack.enter_async_context(centre)
        client = await stack.enter_async_context(httpx.AsyncClient(follow_redirects=False))
        line = Line(
            client,
            options.target,
            basic_key=options.basic_key,
            kit_key=options.kit_key,
            v1_key=options.v1_key,
            time_limit=options.time_limit,
        )
        run = Run(options, catalogue(), line, subjects, centre)
        for _, group in GROUPS:
            await group(run)
        return run.results()
