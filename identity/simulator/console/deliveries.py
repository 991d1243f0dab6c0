"""The syncs a console action sends, what the ISV answered, and sending again what failed.

Each action that the ISV must hear of makes one `Delivery`: its calls in order (newInstance,
then the kit syncs, contract §0.4), each signed by `wire.KooGallery` and posted to the ISV's
production address. A call is `delivered` on `000000` (or newInstance's `000004`), `refused`
on any other resultCode, `failed` when no KooGallery answer came (unreachable, HTTP error, no
key); the calls after it wait. The console's change itself stays made: the marketplace does not
retry a kit call, the administrator decides to run it again (§3.0). `deliver` does that: it
starts at the first call not delivered and sends it with the sync time fixed when the change
was made (`Outbox.add`), as its `timeStamp`/`currentSyncTime`, whenever it is first attempted:
so an older change sent again after a newer one does not undo it (identity ignores a sync
older than what it holds, §7), even when neither got through at first. Only the instanceId
waits for the first attempt: from this console's newInstance, else asked of the ISV once
(newInstance is idempotent per order line). The body, once built, is sent again unchanged.

Deliveries live in process memory, newest first, like the rest of the simulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2 as httpx

from identity.simulator import sender as bodies
from identity.simulator.scenario import DepartmentSpec, MemberSpec, TenantSpec
from identity.simulator.wire import (
    MAX_USERS_PER_SYNC,
    SYNC_CLOCK,
    DeliveryError,
    Keys,
    KooGallery,
    Refused,
    SyncClock,
)

Status = Literal["waiting", "delivered", "refused", "failed"]
Build = Callable[[KooGallery, TenantSpec, str], dict[str, Any]]
"""A call's body, from the sender, the tenant as the action left it, and the instanceId."""
TIMEOUT_SECONDS = 20.0
"""How long the marketplace waits for an answer (§0.3)."""


@dataclass(frozen=True)
class Link:
    """Where the syncs go and how they are signed: the ISV's production address (identity's
    base URL), the seller's keys, the app, and the auth centre sent as `domainName`."""

    identity: str
    keys: Keys
    app_id: str
    auth_centre: str


@dataclass
class Call:
    interface: str
    build: Build
    basic: bool = False
    sync_time: str = ""
    """When the change was made, as the body's `timeStamp`/`currentSyncTime` (§3.0)."""
    body: dict[str, Any] | None = None
    status: Status = "waiting"
    result_code: str = ""
    result_msg: str = ""


@dataclass
class Delivery:
    number: int
    tenant: TenantSpec
    zh: str
    en: str
    calls: list[Call]
    at: float = field(default_factory=time.time)

    @property
    def delivered(self) -> bool:
        return all(call.status == "delivered" for call in self.calls)


class Outbox:
    """Every delivery of this console, and the instanceIds it learnt, by tenantId."""

    def __init__(self, sync_clock: SyncClock = SYNC_CLOCK) -> None:
        self._deliveries: list[Delivery] = []
        self._sync_clock = sync_clock
        self.instances: dict[str, str] = {}

    def add(self, tenant: TenantSpec, zh: str, en: str, calls: list[Call]) -> Delivery:
        """A delivery for a change just made: each call's sync time is fixed now, in order."""
        for call in calls:
            call.sync_time = self._sync_clock.now()
        delivery = Delivery(len(self._deliveries) + 1, tenant, zh, en, calls)
        self._deliveries.append(delivery)
        return delivery

    def get(self, number: int) -> Delivery | None:
        return self._deliveries[number - 1] if 0 < number <= len(self._deliveries) else None

    def of_tenant(self, tenant_id: str, limit: int = 20) -> list[Delivery]:
        found = [d for d in reversed(self._deliveries) if d.tenant.tenant_id == tenant_id]
        return found[:limit]

    def undelivered(self) -> list[Delivery]:
        return [d for d in reversed(self._deliveries) if not d.delivered]


async def deliver(outbox: Outbox, link: Link, delivery: Delivery) -> None:
    """Send the calls not delivered yet, in order, up to the first that is not delivered."""
    async with httpx.AsyncClient(base_url=link.identity, timeout=TIMEOUT_SECONDS) as client:
        sender = KooGallery(client, link.keys, app_id=link.app_id, auth_centre=link.auth_centre)
        for call in delivery.calls:
            if call.status == "delivered":
                continue
            try:
                await _send(outbox, sender, delivery.tenant, call)
            except Refused as exc:
                call.status, call.result_code = "refused", exc.result_code
                call.result_msg = exc.result_msg
                return
            except DeliveryError as exc:
                call.status, call.result_code, call.result_msg = "failed", "", str(exc)
                return


async def _send(outbox: Outbox, sender: KooGallery, tenant: TenantSpec, call: Call) -> None:
    if call.body is None:
        instance_id = "" if call.basic else await _instance_id(outbox, sender, tenant)
        call.body = call.build(_made_at(sender, call.sync_time), tenant, instance_id)
    if call.basic:
        answer = await sender.basic(call.body)
    else:
        answer = await sender.kit(call.interface, call.body)
    if call.interface == "newInstance" and answer.get("instanceId"):
        outbox.instances[tenant.tenant_id] = str(answer["instanceId"])
    call.status = "delivered"
    call.result_code = str(answer.get("resultCode", ""))
    call.result_msg = str(answer.get("resultMsg", ""))


class _Stopped(SyncClock):
    """A sync clock that always says when the change was made."""

    def __init__(self, moment: str) -> None:
        super().__init__()
        self._moment = moment

    def now(self) -> str:
        return self._moment


def _made_at(sender: KooGallery, sync_time: str) -> KooGallery:
    """`sender`, whose bodies say `sync_time` (the sender's own clock when none was fixed)."""
    if not sync_time:
        return sender
    return KooGallery(
        sender.client,
        sender.keys,
        app_id=sender.app_id,
        auth_centre=sender.auth_centre,
        sync_clock=_Stopped(sync_time),
    )


async def _instance_id(outbox: Outbox, sender: KooGallery, tenant: TenantSpec) -> str:
    known = outbox.instances.get(tenant.tenant_id)
    if known is None:
        known = outbox.instances[tenant.tenant_id] = await sender.instance_id(tenant)
    return known


# --- the calls each change sends (§0.4) ---------------------------------------------------------


def purchase(tenant: TenantSpec) -> Call:
    """newInstance for the enterprise's order (§4.2): the app bought."""
    body = bodies.new_instance_body(tenant)
    return Call("newInstance", lambda _s, _t, _i: body, basic=True)


def binding() -> list[Call]:
    """tenantSync 1, applicationSync 1, allOrgSync: the app bound to the enterprise."""
    return [
        Call("tenantSync", lambda s, t, i: bodies.tenant_sync_body(s, t, i, flag=1)),
        Call("applicationSync", bodies.application_sync_body),
        Call("allOrgSync", bodies.all_org_sync_body),
    ]


def tenant_deleted() -> Call:
    """tenantSync 0 (§3.1): the enterprise dissolved."""
    return Call("tenantSync", lambda s, t, i: bodies.tenant_sync_body(s, t, i, flag=0))


def department(changed: DepartmentSpec, flag: int) -> Call:
    """singleOrgSync (§3.4): 1 created, 2 renamed or moved, 0 deleted."""
    return Call(
        "singleOrgSync",
        lambda s, t, i: bodies.single_org_sync_body(s, t, i, changed, flag=flag),
    )


def members(changed: list[MemberSpec], flag: int) -> list[Call]:
    """authSync (§3.3), at most 500 users a call: 1 authorised, 2 changed (enable, role),
    3 authorisation cancelled, 0 deleted (sent disabled, as a member must be to be deleted)."""
    calls = []
    for start in range(0, len(changed), MAX_USERS_PER_SYNC):
        chunk = changed[start : start + MAX_USERS_PER_SYNC]
        calls.append(Call("authSync", _auth_sync(chunk, flag)))
    return calls


def _auth_sync(chunk: list[MemberSpec], flag: int) -> Build:
    def build(sender: KooGallery, tenant: TenantSpec, instance_id: str) -> dict[str, Any]:
        return bodies.auth_sync_body(sender, tenant, instance_id, chunk, flag=flag)

    return build
