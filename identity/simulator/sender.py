"""The marketplace's side of the wire: signed basic and kit calls to a running identity.

Bodies are built from the scenario with the contract's field names, types and flags (kit numbers
are JSON numbers, basic values are strings, `enable` is a string; §3, §4) and delivered signed
by `wire.KooGallery` (§2): identity checks strictly and answers `000002` naming a bad field, so a
mistake here shows at once. Each operation returns the parsed answer (or the answers, for the
composite ones) and raises `Refused` when a `resultCode` is not `000000`.

Choices where the contract is silent:
- `testFlag` is 0 (kit) / "0" (basic): the simulator stands for real production traffic.
- newInstance sends the scenario's `businessId` on provisioning (the purchase), and a fresh one
  whenever an event needs the instanceId and the sender has not learnt it yet: newInstance is
  idempotent per (orderId, orderLineId) and answers the same instanceId (§4.2, §0.4 FAQ), as
  a marketplace retry would. The instanceId is then remembered for the sender's lifetime.
- A deleted member (authSync flag 0) is sent with `enable:"false"`: the console deletes only
  disabled members (§6). Cancelling (flag 3) sends the member as they are.
- authSync carries at most 500 users per call (§3.3): larger lists are split.
- releaseInstance is sent for an expiry (no unsubscription order), so it carries only the id.

Each kit body has a builder of its own (`…_body`, given the instanceId), which the operations
here post at once and the buyer's console keeps, to send the very same body again after a
failed delivery (identity's ordering guard then still sees when it was made, §7).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from identity.marketplace.client_secret import encrypt_client_secret
from identity.simulator.scenario import (
    DepartmentSpec,
    MemberSpec,
    Order,
    ScenarioError,
    TenantSpec,
)
from identity.simulator.wire import (
    MAX_USERS_PER_SYNC,
    Answer,
    DeliveryError,
    Keys,
    KooGallery,
    Refused,
    SyncClock,
    Unreachable,
)

__all__ = [
    "Answer",
    "DeliveryError",
    "Keys",
    "Refused",
    "KooGallery",
    "SyncClock",
    "Unreachable",
    "add_member",
    "bind",
    "cancel_authorisation",
    "delete_member",
    "disable_member",
    "enable_member",
    "freeze",
    "move_department",
    "new_instance",
    "provision",
    "release",
    "unbind",
    "unfreeze",
]

# --- bodies ---------------------------------------------------------------------------------
# The `…_payload` builders are given everything (the time, the auth centre, the app): the
# conformance kit builds its calls with them too. The `…_body` ones take it from the sender.


def kit_payload(
    tenant_id: str, instance_id: str, stamp: str, *, test: int = 0, **fields: Any
) -> dict[str, Any]:
    """The fields every kit call carries (§3.0) around its own."""
    return {
        "instanceId": instance_id,
        "tenantId": tenant_id,
        **fields,
        "testFlag": test,
        "timeStamp": stamp,
    }


def _kit_body(
    sender: KooGallery, tenant: TenantSpec, instance_id: str, **fields: Any
) -> dict[str, Any]:
    return kit_payload(tenant.tenant_id, instance_id, sender.sync_time(), **fields)


def user_object(member: MemberSpec, *, enable: bool | None = None) -> dict[str, Any]:
    """The V2 flat user (§3.3): `enable` a string, optional fields only when known."""
    user: dict[str, Any] = {
        "userName": member.user_name,
        "name": member.name,
        "orgCode": member.org_code,
        "role": member.role,
        "enable": "true" if (member.enable if enable is None else enable) else "false",
    }
    optional = {
        "position": member.position,
        "employeeCode": member.employee_code,
        "employeeType": member.employee_type,
        "mobile": member.mobile,
        "email": member.email,
        "workPlace": member.work_place,
        "entryDate": member.entry_date,
    }
    return user | {k: v for k, v in optional.items() if v is not None}


def org_object(department: DepartmentSpec) -> dict[str, str]:
    return {
        "orgCode": department.org_code,
        "orgName": department.org_name,
        "parentCode": department.parent_code,
    }


def new_instance_payload(order: Order, business_id: str) -> dict[str, Any]:
    """The purchase (§4.2) of one order line."""
    return {
        "activity": "newInstance",
        "orderId": order.order_id,
        "orderLineId": order.order_line_id,
        "businessId": business_id,
        "testFlag": "0",
    }


def new_instance_body(tenant: TenantSpec, business_id: str | None = None) -> dict[str, Any]:
    """The purchase (§4.2): the order line, and its businessId (a fresh one when not given)."""
    order = tenant.order
    return new_instance_payload(order, business_id or order.business_id or uuid.uuid4().hex)


def tenant_sync_payload(
    tenant: TenantSpec, instance_id: str, stamp: str, *, domain: str, flag: int, **more: Any
) -> dict[str, Any]:
    """§3.1; `domain` is the tenant's auth centre (`domainName`). `more` adds or overrides."""
    fields: dict[str, Any] = {
        "orderId": tenant.order.order_id,
        "tenantCode": tenant.tenant_code,
        "name": tenant.name,
        "domainName": domain,
        "flag": flag,
    }
    return kit_payload(tenant.tenant_id, instance_id, stamp, **(fields | more))


def tenant_sync_body(
    sender: KooGallery, tenant: TenantSpec, instance_id: str, *, flag: int
) -> dict[str, Any]:
    """§3.1; the tenant's auth centre is this simulator (`domainName`)."""
    stamp = sender.sync_time()
    return tenant_sync_payload(tenant, instance_id, stamp, domain=sender.auth_centre, flag=flag)


def application_sync_payload(
    tenant: TenantSpec, instance_id: str, stamp: str, *, app_id: str, secret: str, flag: int = 1
) -> dict[str, Any]:
    """§3.2: the (tenant, app) client; `secret` already encrypted (§2.7), or "" for a delete."""
    fields: dict[str, Any] = {
        "appId": app_id,
        "clientId": tenant.client_id,
        "clientSecret": secret,
        "flag": flag,
    }
    return kit_payload(tenant.tenant_id, instance_id, stamp, **fields)


def application_sync_body(
    sender: KooGallery, tenant: TenantSpec, instance_id: str
) -> dict[str, Any]:
    """§3.2: the (tenant, app) client; the secret RSA-OAEP encrypted with the seller public key."""
    secret = encrypt_client_secret(_public_key(sender), tenant.client_secret)
    stamp = sender.sync_time()
    return application_sync_payload(tenant, instance_id, stamp, app_id=sender.app_id, secret=secret)


def _public_key(sender: KooGallery) -> rsa.RSAPublicKey:
    if sender.keys.public_key is None:
        raise DeliveryError(
            "applicationSync needs the seller public key: set "
            "IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE or pass --private-key-file"
        )
    return sender.keys.public_key


def all_org_sync_payload(tenant: TenantSpec, instance_id: str, stamp: str) -> dict[str, Any]:
    """§3.5: the whole department tree."""
    orgs = [org_object(d) for d in tenant.departments]
    return kit_payload(tenant.tenant_id, instance_id, stamp, orgInfoList=orgs)


def all_org_sync_body(sender: KooGallery, tenant: TenantSpec, instance_id: str) -> dict[str, Any]:
    """§3.5: the whole department tree."""
    return all_org_sync_payload(tenant, instance_id, sender.sync_time())


def single_org_sync_body(
    sender: KooGallery,
    tenant: TenantSpec,
    instance_id: str,
    department: DepartmentSpec,
    *,
    flag: int,
) -> dict[str, Any]:
    """§3.4: one department as it is now (flag 1 add, 2 modify, 0 delete)."""
    return _kit_body(sender, tenant, instance_id, **org_object(department), flag=flag)


def auth_sync_payload(
    tenant: TenantSpec,
    instance_id: str,
    members: Sequence[MemberSpec],
    *,
    app_id: str,
    sync_time: str,
    stamp: str,
    flag: int,
    enable: bool | None = None,
    test: int = 0,
) -> dict[str, Any]:
    """§3.3: `currentSyncTime` `sync_time`, at most 500 users (`MAX_USERS_PER_SYNC`)."""
    fields: dict[str, Any] = {
        "appId": app_id,
        "userList": [user_object(m, enable=enable) for m in members],
        "currentSyncTime": sync_time,
        "flag": flag,
    }
    return kit_payload(tenant.tenant_id, instance_id, stamp, test=test, **fields)


def auth_sync_body(
    sender: KooGallery,
    tenant: TenantSpec,
    instance_id: str,
    members: Sequence[MemberSpec],
    *,
    flag: int,
    enable: bool | None = None,
) -> dict[str, Any]:
    """§3.3: at most 500 users (`MAX_USERS_PER_SYNC`): a caller with more splits them."""
    now = sender.sync_time()
    return auth_sync_payload(
        tenant, instance_id, members, app_id=sender.app_id, sync_time=now,
        stamp=sender.sync_time(), flag=flag, enable=enable,
    )  # fmt: skip


# --- operations (contract §0.4: which callbacks fire when) ----------------------------------


async def new_instance(sender: KooGallery, tenant: TenantSpec) -> str:
    """The purchase (§4.2): newInstance with the scenario's businessId; returns instanceId."""
    return await sender.instance_id(tenant, tenant.order.business_id or uuid.uuid4().hex)


async def provision(sender: KooGallery, tenant: TenantSpec) -> list[Answer]:
    """Purchase, bind and authorise: newInstance, tenantSync 1, applicationSync 1, allOrgSync,
    then authSync 1 for the authorised members (§0.4)."""
    await new_instance(sender, tenant)
    answers = await bind(sender, tenant)
    members = tenant.authorised_members
    for start in range(0, len(members), MAX_USERS_PER_SYNC):
        chunk = members[start : start + MAX_USERS_PER_SYNC]
        answers.append(await _auth_sync(sender, tenant, chunk, flag=1))
    return answers


async def bind(sender: KooGallery, tenant: TenantSpec) -> list[Answer]:
    """The buyer binds the app to the enterprise: tenantSync 1, applicationSync 1, allOrgSync
    (§0.4, §3.1, §3.2, §3.5). The tenant's auth centre is this simulator (`domainName`)."""
    return [
        await _tenant_sync(sender, tenant, flag=1),
        await _application_sync(sender, tenant),
        await _all_org_sync(sender, tenant),
    ]


async def unbind(sender: KooGallery, tenant: TenantSpec) -> Answer:
    """tenantSync flag 0 (§3.1): the enterprise no longer uses the purchase."""
    return await _tenant_sync(sender, tenant, flag=0)


async def add_member(sender: KooGallery, tenant: TenantSpec, user_name: str) -> Answer:
    """The admin authorises a member for the app: authSync flag 1 (§3.3, §6)."""
    return await _auth_sync(sender, tenant, [tenant.member(user_name)], flag=1)


async def disable_member(sender: KooGallery, tenant: TenantSpec, user_name: str) -> Answer:
    """authSync flag 2 with `enable:"false"` (§3.3, §6)."""
    return await _auth_sync(sender, tenant, [tenant.member(user_name)], flag=2, enable=False)


async def enable_member(sender: KooGallery, tenant: TenantSpec, user_name: str) -> Answer:
    """authSync flag 2 with `enable:"true"` (§3.3, §6)."""
    return await _auth_sync(sender, tenant, [tenant.member(user_name)], flag=2, enable=True)


async def delete_member(sender: KooGallery, tenant: TenantSpec, user_name: str) -> Answer:
    """authSync flag 0 (§3.3); only a disabled member can be deleted (§6)."""
    return await _auth_sync(sender, tenant, [tenant.member(user_name)], flag=0, enable=False)


async def cancel_authorisation(sender: KooGallery, tenant: TenantSpec, user_name: str) -> Answer:
    """authSync flag 3 (§3.3): the member stays, the app is no longer authorised to them."""
    return await _auth_sync(sender, tenant, [tenant.member(user_name)], flag=3)


async def set_role(sender: KooGallery, tenant: TenantSpec, user_name: str, role: str) -> Answer:
    """authSync flag 2 with another `role` (`admin` or `user`) (§3.3)."""
    member = tenant.member(user_name).model_copy(update={"role": role})
    return await _auth_sync(sender, tenant, [member], flag=2)


async def move_department(
    sender: KooGallery, tenant: TenantSpec, org_code: str, parent_code: str
) -> Answer:
    """singleOrgSync flag 2 with a new parentCode ("" = top level) (§3.4). The move must keep
    the tree a tree, as the console would."""
    department = tenant.department(org_code)
    if parent_code:
        tenant.department(parent_code)
        if parent_code in tenant.subtree(org_code):
            raise ScenarioError(f"cannot move {org_code} under its own subtree ({parent_code})")
    moved = department.model_copy(update={"parent_code": parent_code})
    return await _single_org_sync(sender, tenant, moved, flag=2)


async def _single_org_sync(
    sender: KooGallery, tenant: TenantSpec, department: DepartmentSpec, *, flag: int
) -> Answer:
    instance_id = await sender.instance_id(tenant)
    body = single_org_sync_body(sender, tenant, instance_id, department, flag=flag)
    return await sender.kit("singleOrgSync", body)


async def freeze(sender: KooGallery, tenant: TenantSpec) -> Answer:
    """updateInstanceStatus FREEZE (§4.5): expiry, arrears or a violation."""
    return await _instance_status(sender, tenant, "FREEZE")


async def unfreeze(sender: KooGallery, tenant: TenantSpec) -> Answer:
    """updateInstanceStatus UNFREEZE (§4.5): renewed, or the violation cleared."""
    return await _instance_status(sender, tenant, "UNFREEZE")


async def release(sender: KooGallery, tenant: TenantSpec) -> Answer:
    """releaseInstance (§4.6): expiry without renewal."""
    instance_id = await sender.instance_id(tenant)
    body = {"activity": "releaseInstance", "instanceId": instance_id, "testFlag": "0"}
    return await sender.basic(body)


async def _instance_status(sender: KooGallery, tenant: TenantSpec, status: str) -> Answer:
    instance_id = await sender.instance_id(tenant)
    body = {
        "activity": "updateInstanceStatus",
        "instanceId": instance_id,
        "status": status,
        "testFlag": "0",
    }
    return await sender.basic(body)


async def _tenant_sync(sender: KooGallery, tenant: TenantSpec, *, flag: int) -> Answer:
    instance_id = await sender.instance_id(tenant)
    return await sender.kit("tenantSync", tenant_sync_body(sender, tenant, instance_id, flag=flag))


async def _application_sync(sender: KooGallery, tenant: TenantSpec) -> Answer:
    _public_key(sender)  # before newInstance is asked for the instanceId
    instance_id = await sender.instance_id(tenant)
    return await sender.kit("applicationSync", application_sync_body(sender, tenant, instance_id))


async def _all_org_sync(sender: KooGallery, tenant: TenantSpec) -> Answer:
    instance_id = await sender.instance_id(tenant)
    return await sender.kit("allOrgSync", all_org_sync_body(sender, tenant, instance_id))


async def _auth_sync(
    sender: KooGallery,
    tenant: TenantSpec,
    members: Sequence[MemberSpec],
    *,
    flag: int,
    enable: bool | None = None,
) -> Answer:
    instance_id = await sender.instance_id(tenant)
    body = auth_sync_body(sender, tenant, instance_id, members, flag=flag, enable=enable)
    return await sender.kit("authSync", body)
