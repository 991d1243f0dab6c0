"""What each KooGallery callback does, once its signature and shape are known good.

Each handler is the real thing. `apply` runs debug calls (`testFlag`, contract §3.0, §4.0)
through the very same handler inside a savepoint that is always rolled back: they are validated
and answered as real calls, and write nothing; an unknown instance is the one exception, answered
as if it existed (see `apply`). The one exception is the seller's own
test tenant (empty `instanceId`) when `IDENTITY_PERSIST_SELLER_DEBUG_SYNCS` is on.

Each handler also says what it changed (`Reply.changes`), which the audit row keeps, written in
the call's transaction: counts, flags and identifiers only, never names or other personal data.
A debug call that is rolled back changed nothing, and says so (`{}`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from identity.crypto import Cipher
from identity.db import Database, utcnow
from identity.directory import bindings, departments, instances, members, tenants
from identity.directory.domains import DomainRefused, auth_centre_origin
from identity.errors import InstanceNotFound, InvalidParameter, OrderNotConfirmed, ResultCode
from identity.marketplace import order_details
from identity.marketplace import schemas as s
from identity.marketplace.client_secret import decrypt_client_secret
from identity.marketplace.orders import Kind, OrderApi, Outcome
from identity.marketplace.verifier import Verifier
from identity.settings import Settings


@dataclass(frozen=True)
class Marketplace:
    """Everything a callback needs besides the database session."""

    settings: Settings
    cipher: Cipher
    private_key: RSAPrivateKey | None
    verifier: Verifier = field(default_factory=Verifier)
    order_api: OrderApi | None = None
    """The query-order API, when an access key is configured (`order_details`)."""


Changes = dict[str, int | str | bool]
"""What a call changed, for its audit row (`MarketplaceCall.changes`)."""


@dataclass
class Reply:
    instance_id: str | None = None
    info: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    changes: Changes = field(default_factory=dict)
    tenant_id: str | None = None
    """The tenant an order-lifecycle call concerned, which its body does not name: the one
    bound to its instance, when exactly one is."""
    result_code: ResultCode = ResultCode.SUCCESS
    """`000004` for a newInstance whose order is not confirmed yet; else success."""


Handler = Callable[[AsyncSession, Marketplace, Any], Awaitable[Reply]]


async def _persisted(session: AsyncSession, mp: Marketplace, call: Any) -> bool:
    """Whether a call's changes are kept. Debug calls write nothing, except seller-side ones
    (empty instanceId) when the operator asked to keep them, and even then never to a tenant
    that a purchase ever bound: the debug tool sends arbitrary tenant ids, and one such call
    must not touch a customer."""
    if not call.test:
        return True
    seller_side = isinstance(call, s.KitCall) and call.instance_id == ""
    if not (seller_side and mp.settings.persist_seller_debug_syncs):
        return False
    await bindings.lock_tenant(session, call.tenant_id)
    return not await bindings.ever_bound(session, call.tenant_id)


async def ask_order(db: Database, mp: Marketplace, call: Any) -> Outcome | None:
    """For a newInstance, before its transaction: the order as the query-order API answers it
    (`order_details`), or None when it need not be asked (no access key configured, a debug
    call, or an instance of this line already confirmed)."""
    if mp.order_api is None or not isinstance(call, s.NewInstance) or call.test:
        return None
    async with db.read() as session:
        if await instances.order_confirmed(session, call.order_id, call.order_line_id):
            return None
    return await mp.order_api.query(call.order_id, call.order_line_id)


async def apply(
    session: AsyncSession, mp: Marketplace, handler: Handler, call: Any,
    order: Outcome | None = None,
) -> Reply:  # fmt: skip
    """Run a call; a debug call runs the same way and is then rolled back. `order`: what the
    query-order API answered for a newInstance (`ask_order`)."""
    if order is not None:
        return await _instance_of_order(session, mp, call, order)
    if await _persisted(session, mp, call):
        return await handler(session, mp, call)
    savepoint = await session.begin_nested()
    try:
        reply = await handler(session, mp, call)
    except InstanceNotFound:
        # Dial tests replay the seller's debug cases twice a day and freeze the product after
        # five failing days (§0.3); those cases name instances a debug newInstance never
        # stored. Answer them as for an instance that exists.
        if isinstance(call, s.QueryInstance):
            return Reply(info=_instance_info(mp, call.ids))
        return Reply()
    finally:
        await savepoint.rollback()
    return replace(reply, changes={})  # rolled back: nothing changed


# --- Kit ----------------------------------------------------------------------------------


async def _domain(session: AsyncSession, mp: Marketplace, call: s.TenantSync) -> str:
    """The auth-centre origin to store (`identity.directory.domains`). Debug calls may carry
    any value (§3.1) and are answered as usual, unless they are kept."""
    try:
        return auth_centre_origin(
            call.domain_name, allow_loopback_http=mp.settings.allow_loopback_http
        )
    except DomainRefused as exc:
        if await _persisted(session, mp, call):
            raise InvalidParameter(f"domainName: {exc}") from None
        return call.domain_name


async def tenant_sync(session: AsyncSession, mp: Marketplace, call: s.TenantSync) -> Reply:
    done = await tenants.sync_tenant(
        session,
        tenant_id=call.tenant_id,
        tenant_code=call.tenant_code,
        name=call.name,
        domain_name=await _domain(session, mp, call),
        instance_id=call.instance_id,
        order_id=call.order_id,
        flag=call.flag,
        sync_time=call.time_stamp,
    )
    return Reply(changes=asdict(done))


async def application_sync(
    session: AsyncSession, mp: Marketplace, call: s.ApplicationSync
) -> Reply:
    secret = None
    if call.flag != 0:  # a delete needs no secret; every other call must carry a good one
        secret, variant = decrypt_client_secret(mp.private_key, call.client_secret)
        reply = Reply(extra={"oaep": variant})
    else:
        reply = Reply()
    done = await tenants.sync_app_credential(
        session,
        mp.cipher,
        tenant_id=call.tenant_id,
        app_id=call.app_id,
        instance_id=call.instance_id,
        client_id=call.client_id,
        client_secret=secret,
        sync_time=call.time_stamp,
    )
    reply.changes = {
        "app_id": done.app_id,
        "change": done.change.value,
        "sessions_ended": done.sessions_ended,
    }
    return reply


def _member_row(user: s.User) -> members.MemberRow:
    return members.MemberRow(
        user_name=user.user_name,
        name=user.name,
        org_code=user.org_code,
        role=user.role,
        enabled=user.enable,
        position=user.position,
        employee_code=user.employee_code,
        employee_type=user.employee_type,
        mobile=user.mobile,
        email=user.email,
        work_place=user.work_place,
        entry_date=user.entry_date,
    )


_ENDED_AS = {
    members.AuthFlag.ADD: "disabled",
    members.AuthFlag.MODIFY: "disabled",
    members.AuthFlag.CANCEL: "deauthorised",
    members.AuthFlag.DELETE: "deleted",
}
"""How an authSync's ended members are counted, by its flag."""


async def auth_sync(session: AsyncSession, mp: Marketplace, call: s.AuthSync) -> Reply:
    flag = members.AuthFlag(call.flag)
    done = await members.sync_members(
        session,
        tenant_id=call.tenant_id,
        app_id=call.app_id,
        instance_id=call.instance_id,
        flag=flag,
        users=[_member_row(u) for u in call.user_list],
        sync_time=call.sync_time,
    )
    changes: Changes = {"app_id": call.app_id, "added": done.added}
    changes[_ENDED_AS[flag]] = done.ended
    changes["sessions_ended"] = done.sessions_ended
    return Reply(changes=changes)


async def single_org_sync(session: AsyncSession, mp: Marketplace, call: s.SingleOrgSync) -> Reply:
    done = await departments.sync_department(
        session,
        tenant_id=call.tenant_id,
        department=departments.DepartmentRow(
            org_code=call.org_code, name=call.org_name, parent_code=call.parent_code or ""
        ),
        deleted=call.flag == 0,
        sync_time=call.time_stamp,
    )
    return Reply(changes={"org_code": done.org_code, "change": done.change.value})


async def all_org_sync(session: AsyncSession, mp: Marketplace, call: s.AllOrgSync) -> Reply:
    done = await departments.replace_departments(
        session,
        tenant_id=call.tenant_id,
        departments=[
            departments.DepartmentRow(
                org_code=o.org_code, name=o.org_name, parent_code=o.parent_code or ""
            )
            for o in call.org_info_list
        ],
        sync_time=call.time_stamp,
    )
    return Reply(changes={"departments": done.listed, "added": done.added, "removed": done.removed})


# --- Basic --------------------------------------------------------------------------------


async def new_instance(session: AsyncSession, mp: Marketplace, call: s.NewInstance) -> Reply:
    instance_id = await instances.create_instance(
        session,
        order_id=call.order_id,
        order_line_id=call.order_line_id,
        business_id=call.business_id,
    )
    return Reply(instance_id=instance_id)


async def _instance_of_order(
    session: AsyncSession, mp: Marketplace, call: s.NewInstance, order: Outcome
) -> Reply:
    """newInstance once its order was asked for: provisioned with it, or pending, or not at
    all (`order_details`)."""
    if order.kind is Kind.REFUSED:
        raise OrderNotConfirmed(f"the marketplace's order API: {order.detail}")
    instance_id = await instances.create_instance(
        session,
        order_id=call.order_id,
        order_line_id=call.order_line_id,
        business_id=call.business_id,
    )
    if order.kind is Kind.CONFIRMED:
        assert order.order is not None
        await order_details.confirm(
            session, mp.cipher, instance_id, call.order_line_id, order.order
        )
        return Reply(instance_id=instance_id, changes={"order": order_details.CONFIRMED})
    await order_details.postpone(session, instance_id, 1, order, utcnow())
    return Reply(
        instance_id=instance_id,
        changes={"order": order_details.PENDING},
        result_code=ResultCode.IN_PROGRESS,
    )


async def query_instance(session: AsyncSession, mp: Marketplace, call: s.QueryInstance) -> Reply:
    """Known ids get their appInfo; unknown ones are left out; none known is 000003. An
    instance whose order is not confirmed is left out too, but is not unknown: asked alone, it
    is answered with an empty list, which tells the marketplace to keep polling."""
    found = await instances.find_instances(session, call.ids)
    if not found:
        raise InstanceNotFound(f"no instance among {', '.join(call.ids)[:200]} exists")
    ready = [i.instance_id for i in found if i.order_state in (None, order_details.CONFIRMED)]
    return Reply(info=_instance_info(mp, ready))


def _instance_info(mp: Marketplace, ids: list[str]) -> list[dict[str, Any]]:
    app_info = {"frontEndUrl": mp.settings.effective_frontend_url}
    return [{"instanceId": i, "appInfo": app_info} for i in ids]


async def refresh_instance(
    session: AsyncSession, mp: Marketplace, call: s.RefreshInstance
) -> Reply:
    done = await instances.refresh_instance(
        session,
        instance_id=call.instance_id,
        expire_time=s.parse_expire_time(call.expire_time),
        order_id=call.order_id,
        order_line_id=call.order_line_id,
        product_id=call.product_id,
    )
    return _lifecycle(done, scene=call.scene)


async def update_instance_status(
    session: AsyncSession, mp: Marketplace, call: s.UpdateInstanceStatus
) -> Reply:
    frozen = call.status == "FREEZE"
    done = await instances.set_frozen(session, instance_id=call.instance_id, frozen=frozen)
    return _lifecycle(done, status="frozen" if frozen else "unfrozen")


async def release_instance(
    session: AsyncSession, mp: Marketplace, call: s.ReleaseInstance
) -> Reply:
    done = await instances.release_instance(session, instance_id=call.instance_id)
    return _lifecycle(done, status="released")


async def upgrade_instance(
    session: AsyncSession, mp: Marketplace, call: s.UpgradeInstance
) -> Reply:
    done = await instances.upgrade_instance(
        session,
        instance_id=call.instance_id,
        order_id=call.order_id,
        order_line_id=call.order_line_id,
    )
    return _lifecycle(done, upgraded=True)


def _lifecycle(done: instances.InstanceChanged, **what: str | bool) -> Reply:
    """An order-lifecycle call's reply: its body names no tenant, so the audit row takes the one
    bound to the instance when there is exactly one, and the tenant's admin sees the call. With
    several (or none), the row names none and only counts them: one call, one audit row."""
    changes: Changes = {**what, "changed": done.changed, "sessions_ended": done.sessions_ended}
    changes["tenants"] = len(done.tenant_ids)
    only = done.tenant_ids[0] if len(done.tenant_ids) == 1 else None
    return Reply(changes=changes, tenant_id=only)


KIT: dict[str, tuple[type[BaseModel], Handler]] = {
    "tenantSync": (s.TenantSync, tenant_sync),
    "applicationSync": (s.ApplicationSync, application_sync),
    "authSync": (s.AuthSync, auth_sync),
    "singleOrgSync": (s.SingleOrgSync, single_org_sync),
    "allOrgSync": (s.AllOrgSync, all_org_sync),
}

BASIC: dict[str, tuple[type[BaseModel], Handler]] = {
    "newInstance": (s.NewInstance, new_instance),
    "queryInstance": (s.QueryInstance, query_instance),
    "refreshInstance": (s.RefreshInstance, refresh_instance),
    "updateInstanceStatus": (s.UpdateInstanceStatus, update_instance_status),
    "releaseInstance": (s.ReleaseInstance, release_instance),
    "upgradeInstance": (s.UpgradeInstance, upgrade_instance),
}
