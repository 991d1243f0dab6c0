"""The console's changes to the world, each a function from the scenario as it is to the next.

Every result is validated whole by `Scenario` (scenario.py), the one rule of what the
marketplace can hold: a duplicate code or account, a sixth enterprise, a department moved under
itself or named as a sibling is, is refused there, and its reason comes back as `NotAllowed` in
Chinese and English. What only the console's actions forbid (deleting a department that is not
empty, a member who is not disabled, an enterprise that still has departments or members, §6)
is checked here. Nothing here sends anything: `actions` pairs each change with its syncs.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from identity.errors import describe_validation
from identity.simulator.scenario import (
    Conflict,
    DepartmentSpec,
    MemberSpec,
    Order,
    Scenario,
    TenantSpec,
)

Model = TypeVar("Model", bound=BaseModel)


class NotAllowed(Exception):
    """Why the console cannot do what was asked, in Chinese and English."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh, self.en = zh, en


def checked(kind: type[Model], data: dict[str, Any]) -> Model:
    """`kind` validated from `data` (field names), a broken rule becoming `NotAllowed`."""
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            found = (error.get("ctx") or {}).get("error")
            if isinstance(found, Conflict):
                raise NotAllowed(found.zh, found.en) from None
        problems = describe_validation(exc, limit=3, whole="the world")
        raise NotAllowed("内容无效：" + problems, "Not valid: " + problems) from None


def tenant_of(scenario: Scenario, tenant_id: str) -> TenantSpec:
    for tenant in scenario.tenants:
        if tenant.tenant_id == tenant_id:
            return tenant
    raise NotAllowed("企业不存在", f"There is no enterprise {tenant_id}")


def member_of(tenant: TenantSpec, user_name: str) -> MemberSpec:
    for member in tenant.members:
        if member.user_name == user_name:
            return member
    account = f"{user_name}@{tenant.tenant_code}"
    raise NotAllowed(f"成员 {account} 不存在", f"There is no member {account}")


def department_of(tenant: TenantSpec, org_code: str) -> DepartmentSpec:
    for department in tenant.departments:
        if department.org_code == org_code:
            return department
    raise NotAllowed(f"部门 {org_code} 不存在", f"There is no department {org_code}")


def _with_tenants(scenario: Scenario, tenants: list[TenantSpec]) -> Scenario:
    return checked(Scenario, {**dict(scenario), "tenants": tenants})


def _with_tenant(scenario: Scenario, tenant_id: str, **changes: Any) -> Scenario:
    """The scenario with one tenant changed, the tenant validated again as a whole."""
    tenant = tenant_of(scenario, tenant_id)
    changed = checked(TenantSpec, {**dict(tenant), **changes})
    return _with_tenants(
        scenario, [changed if t.tenant_id == tenant_id else t for t in scenario.tenants]
    )


# --- enterprises ------------------------------------------------------------------------------


def create_enterprise(
    scenario: Scenario,
    *,
    name: str,
    code: str,
    tenant_id: str,
    client_id: str,
    client_secret: str,
    order_id: str,
) -> Scenario:
    """A new enterprise of the buyer, with its top department (its code and name) and the
    order it buys the app with. The enterprise code is unique and never changes (§6)."""
    if scenario.buyer is None:
        raise NotAllowed("此场景没有买家账号", "The scenario has no buyer")
    order = Order(
        order_id=order_id,
        order_line_id=f"{order_id}-1",
        product_id="OFFI-CONSOLE",
        customer_id=scenario.buyer.customer_id,
    )
    tenant = checked(
        TenantSpec,
        {
            "tenant_id": tenant_id,
            "tenant_code": code,
            "name": name,
            "client_id": client_id,
            "client_secret": client_secret,
            "order": order,
            "departments": [DepartmentSpec(org_code=code, org_name=name)],
        },
    )
    return _with_tenants(scenario, [*scenario.tenants, tenant])


def dissolve(scenario: Scenario, tenant_id: str) -> Scenario:
    """Only an empty enterprise can be dissolved: every department and member first (§6)."""
    tenant = tenant_of(scenario, tenant_id)
    if tenant.members:
        raise NotAllowed(
            f"企业还有 {len(tenant.members)} 名成员：请先删除所有成员和部门",
            f"The enterprise still has {len(tenant.members)} member(s): "
            "delete every member and department first",
        )
    if tenant.departments:
        raise NotAllowed(
            f"企业还有 {len(tenant.departments)} 个部门：请先删除所有部门",
            f"The enterprise still has {len(tenant.departments)} department(s): delete them first",
        )
    return _with_tenants(scenario, [t for t in scenario.tenants if t.tenant_id != tenant_id])


# --- departments ------------------------------------------------------------------------------


def add_department(
    scenario: Scenario, tenant_id: str, org_code: str, org_name: str, parent_code: str
) -> Scenario:
    tenant = tenant_of(scenario, tenant_id)
    if parent_code:
        department_of(tenant, parent_code)
    added = DepartmentSpec(org_code=org_code, org_name=org_name, parent_code=parent_code)
    return _with_tenant(scenario, tenant_id, departments=[*tenant.departments, added])


def _with_department(scenario: Scenario, tenant_id: str, org_code: str, **changes: str) -> Scenario:
    tenant = tenant_of(scenario, tenant_id)
    department = department_of(tenant, org_code)
    changed = checked(DepartmentSpec, {**dict(department), **changes})
    departments = [changed if d.org_code == org_code else d for d in tenant.departments]
    return _with_tenant(scenario, tenant_id, departments=departments)


def rename_department(scenario: Scenario, tenant_id: str, org_code: str, name: str) -> Scenario:
    return _with_department(scenario, tenant_id, org_code, org_name=name)


def move_department(
    scenario: Scenario, tenant_id: str, org_code: str, parent_code: str
) -> Scenario:
    """Under another parent ("" = the top); validation keeps the tree a tree."""
    if parent_code:
        department_of(tenant_of(scenario, tenant_id), parent_code)
    return _with_department(scenario, tenant_id, org_code, parent_code=parent_code)


def delete_department(scenario: Scenario, tenant_id: str, org_code: str) -> Scenario:
    """Only an empty one: no sub-department and no member."""
    tenant = tenant_of(scenario, tenant_id)
    department = department_of(tenant, org_code)
    if any(d.parent_code == org_code for d in tenant.departments):
        raise NotAllowed(
            f"部门 {department.org_name} 下还有子部门：请先删除或移走",
            f"{department.org_name} still has sub-departments: delete or move them first",
        )
    held = sum(1 for m in tenant.members if m.org_code == org_code)
    if held:
        raise NotAllowed(
            f"部门 {department.org_name} 下还有 {held} 名成员：请先删除",
            f"{department.org_name} still has {held} member(s): delete them first",
        )
    departments = [d for d in tenant.departments if d.org_code != org_code]
    return _with_tenant(scenario, tenant_id, departments=departments)


# --- members ----------------------------------------------------------------------------------


def new_member(tenant: TenantSpec, member: dict[str, Any], taken: Collection[str]) -> MemberSpec:
    """A member (field names of `MemberSpec`) the enterprise can take, whose account is not in
    `taken` (the enterprise's, and in an import the rows before it). Checked alone, so that an
    import of many rows validates the enterprise once, not once per row."""
    department_of(tenant, str(member.get("org_code", "")))
    added = checked(MemberSpec, member)
    if added.user_name in taken:
        code = tenant.tenant_code
        raise NotAllowed(
            f"账号 {added.user_name}@{code} 已存在",
            f"tenant {code}: userName {added.user_name} appears twice",
        )
    return added


def add_members(scenario: Scenario, tenant_id: str, added: list[MemberSpec]) -> Scenario:
    """Members added at once; their accounts never change afterwards (§6)."""
    tenant = tenant_of(scenario, tenant_id)
    return _with_tenant(scenario, tenant_id, members=[*tenant.members, *added])


def add_member(scenario: Scenario, tenant_id: str, member: dict[str, Any]) -> Scenario:
    tenant = tenant_of(scenario, tenant_id)
    taken = {m.user_name for m in tenant.members}
    return add_members(scenario, tenant_id, [new_member(tenant, member, taken)])


def change_members(
    scenario: Scenario, tenant_id: str, user_names: Collection[str], **changes: Any
) -> Scenario:
    """The same change to several members, the enterprise validated once."""
    tenant = tenant_of(scenario, tenant_id)
    wanted = set(user_names)
    for name in sorted(wanted - {m.user_name for m in tenant.members})[:1]:
        member_of(tenant, name)  # refused: there is no such member
    members = [
        checked(MemberSpec, {**dict(m), **changes}) if m.user_name in wanted else m
        for m in tenant.members
    ]
    return _with_tenant(scenario, tenant_id, members=members)


def change_member(scenario: Scenario, tenant_id: str, user_name: str, **changes: Any) -> Scenario:
    return change_members(scenario, tenant_id, [user_name], **changes)


def delete_member(scenario: Scenario, tenant_id: str, user_name: str) -> Scenario:
    """Only a disabled member can be deleted (§6)."""
    tenant = tenant_of(scenario, tenant_id)
    member = member_of(tenant, user_name)
    if member.enable:
        account = f"{user_name}@{tenant.tenant_code}"
        raise NotAllowed(
            f"只能删除已禁用的成员：请先禁用 {account}",
            f"Only a disabled member can be deleted: disable {account} first",
        )
    members = [m for m in tenant.members if m.user_name != user_name]
    return _with_tenant(scenario, tenant_id, members=members)
