"""Two products in one tenant (contract §0.4): each app's access follows the instance its
credential and authorisations came with. Freezing, releasing or unbinding one product's
instance ends access to that app only; the other product's members stay signed in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from identity.db import Database
from identity.models import AccessRevocation
from identity.simulator import sender as events
from identity.simulator.scenario import Order, Scenario, TenantSpec
from identity.simulator.sender import Sender
from tests.simulator_world import world_data
from tests.stack import Browser, Stack, assert_refused, running_stack

APP2 = "second-app"
SESSION = "identity_session"
Event = Callable[[Sender, TenantSpec], Awaitable[object]]


@pytest.fixture(scope="module")
async def stack(database_url: str, private_key_file: Path) -> AsyncIterator[Stack]:
    """The usual stack, its auth centre also registering APP2's callback."""
    scenario = Scenario.model_validate({**world_data(), "otherAppIds": [APP2]})
    async with running_stack(database_url, private_key_file, scenario) as running:
        yield running


@pytest.fixture
async def two_products(acme: Stack) -> tuple[Stack, Sender, TenantSpec]:
    """acme holds demo-app (provisioned by `acme`) and APP2 bought as a second order."""
    second = Sender(acme.client, acme.keys, app_id=APP2, auth_centre=acme.sim)
    spec = acme.tenant("acme")
    order = Order(order_id="CS-ACME-0002", order_line_id="CS-ACME-0002-1", business_id="acme-2")
    tenant2 = spec.model_copy(update={"order": order})
    await events.provision(second, tenant2)
    return acme, second, tenant2


async def _revocations(db: Database) -> set[tuple[str, str | None]]:
    async with db.read() as session:
        query = select(AccessRevocation.reason, AccessRevocation.app_id)
        return {(r.reason, r.app_id) for r in (await session.execute(query)).all()}


async def _signed_in(stack: Stack, account: str, app: str) -> Browser:
    browser = stack.browser()
    landed = await browser.flow_b("acme", account, account.split("@")[0] + "-pw", app=app)
    assert landed.status_code == 200, landed.text
    assert (await browser.session()).json()["appId"] == app
    return browser


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        pytest.param(events.freeze, "instance_frozen", id="FREEZE"),
        pytest.param(events.release, "instance_released", id="releaseInstance"),
        pytest.param(events.unbind, "instance_unbound", id="tenantSync-flag-0"),
    ],
)
async def test_ending_one_product_ends_only_its_app(
    two_products: tuple[Stack, Sender, TenantSpec], db: Database, event: Event, reason: str
) -> None:
    stack, second, tenant2 = two_products
    on_app2 = await _signed_in(stack, "bob@acme", APP2)
    on_app1 = await _signed_in(stack, "alice@acme", stack.scenario.app_id)
    try:
        before = await _revocations(db)
        await event(second, tenant2)

        assert (await on_app2.session()).status_code == 401
        assert (await on_app1.session()).status_code == 200
        assert await _revocations(db) - before == {(reason, APP2)}

        again = stack.browser()
        refused = await again.flow_b("acme", "bob@acme", "bob-pw", app=APP2)
        assert_refused(refused, "instance_inactive")
        await again.close()
        still = await _signed_in(stack, "bob@acme", stack.scenario.app_id)
        await still.close()
    finally:
        await on_app1.close()
        await on_app2.close()


async def test_unfreezing_restores_the_app(
    two_products: tuple[Stack, Sender, TenantSpec],
) -> None:
    stack, second, tenant2 = two_products
    await events.freeze(second, tenant2)
    await events.unfreeze(second, tenant2)
    browser = await _signed_in(stack, "bob@acme", APP2)
    await browser.close()
