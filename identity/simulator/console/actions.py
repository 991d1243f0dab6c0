"""The console's enterprise and department actions: each changes the world (`world`), then
sends the ISV the syncs the marketplace sends for it (§0.4), when the enterprise is bound.

| action | syncs (once bound) |
|---|---|
| create an enterprise | none: it is not bound yet |
| bind the app | newInstance (bought), tenantSync 1, applicationSync 1, allOrgSync |
| create / rename, move / delete a department | singleOrgSync 1 / 2 / 0 |
| dissolve an empty enterprise | tenantSync 0 |
| send again | the calls of a delivery not delivered yet |

Members' actions are in `members`. A change stays made whatever the ISV answers
(`deliveries`).
"""

from __future__ import annotations

import secrets
import uuid

from identity.simulator.console import deliveries as calls
from identity.simulator.console import world as edits
from identity.simulator.console.state import Console, Done
from identity.simulator.console.world import NotAllowed
from identity.simulator.scenario import Scenario


async def create_enterprise(console: Console, name: str, code: str) -> Done:
    """A new enterprise with its top department; it uses no app until it is bound."""
    tenant_id = uuid.uuid4().hex
    order = f"CS{secrets.token_hex(6).upper()}"
    after = edits.create_enterprise(
        console.scenario,
        name=name,
        code=code,
        tenant_id=tenant_id,
        client_id=f"{code}-{secrets.token_hex(8)}",
        client_secret=secrets.token_urlsafe(32),
        order_id=order,
    )
    console.world.replace(after)
    console.unbound.add(tenant_id)
    return Done(f"已创建企业 {name}（{code}）", f"Enterprise {name} ({code}) created")


async def bind(console: Console, tenant_id: str) -> Done:
    """The buyer buys the app for the enterprise and binds it (§0.4)."""
    tenant = edits.tenant_of(console.scenario, tenant_id)
    if console.bound(tenant):
        raise NotAllowed("该企业已绑定应用", "The app is already bound to this enterprise")
    console.unbound.discard(tenant_id)
    sends = [calls.purchase(tenant), *calls.binding()]
    return await console.send(tenant, "绑定应用", "App bound", sends)


async def dissolve(console: Console, tenant_id: str) -> Done:
    tenant = edits.tenant_of(console.scenario, tenant_id)
    after = edits.dissolve(console.scenario, tenant_id)
    console.world.replace(after)
    bound = console.bound(tenant)
    console.unbound.discard(tenant_id)
    sends = [calls.tenant_deleted()] if bound else []
    zh, en = f"已解散企业 {tenant.name}", f"Enterprise {tenant.name} dissolved"
    return await console.send(tenant, zh, en, sends)


async def add_department(
    console: Console, tenant_id: str, org_code: str, org_name: str, parent_code: str
) -> Done:
    after = edits.add_department(console.scenario, tenant_id, org_code, org_name, parent_code)
    return await _department_changed(
        console, after, tenant_id, org_code, 1, f"已创建部门 {org_name}", f"{org_name} created"
    )


async def rename_department(console: Console, tenant_id: str, org_code: str, name: str) -> Done:
    after = edits.rename_department(console.scenario, tenant_id, org_code, name)
    return await _department_changed(
        console, after, tenant_id, org_code, 2, f"部门已改名为 {name}", f"Renamed {name}"
    )


async def move_department(
    console: Console, tenant_id: str, org_code: str, parent_code: str
) -> Done:
    after = edits.move_department(console.scenario, tenant_id, org_code, parent_code)
    tenant = edits.tenant_of(after, tenant_id)
    name = edits.department_of(tenant, org_code).org_name
    where = edits.department_of(tenant, parent_code).org_name if parent_code else "—"
    return await _department_changed(
        console, after, tenant_id, org_code, 2, f"{name} 已移至 {where} 下", f"{name} moved"
    )


async def delete_department(console: Console, tenant_id: str, org_code: str) -> Done:
    department = edits.department_of(edits.tenant_of(console.scenario, tenant_id), org_code)
    after = edits.delete_department(console.scenario, tenant_id, org_code)
    console.world.replace(after)
    tenant = edits.tenant_of(after, tenant_id)
    sends = [calls.department(department, 0)] if console.bound(tenant) else []
    name = department.org_name
    return await console.send(tenant, f"已删除部门 {name}", f"{name} deleted", sends)


async def _department_changed(
    console: Console, after: Scenario, tenant_id: str, org_code: str, flag: int,
    zh: str, en: str,
) -> Done:  # fmt: skip
    console.world.replace(after)
    tenant = edits.tenant_of(after, tenant_id)
    department = edits.department_of(tenant, org_code)
    sends = [calls.department(department, flag)] if console.bound(tenant) else []
    return await console.send(tenant, zh, en, sends)


async def send_again(console: Console, number: int) -> Done:
    """The calls of delivery `number` not delivered yet, with the bodies first built."""
    delivery = console.outbox.get(number)
    if delivery is None:
        raise NotAllowed("没有这条同步记录", f"There is no delivery {number}")
    if delivery.delivered:
        raise NotAllowed("这条同步已经送达", "That delivery already went through")
    await calls.deliver(console.outbox, console.link, delivery)
    return Done(f"再次发送：{delivery.zh}", f"Sent again: {delivery.en}", delivery)
