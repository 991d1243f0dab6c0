"""The console's member actions (§6), and the authSync each sends once the enterprise is bound
and the member is authorised for the app (§3.3):

| action | authSync |
|---|---|
| add a member, import members (CSV) | none: the app is not authorised to them yet |
| authorise members or a department (its sub-departments too) | flag 1 |
| cancel their authorisation | flag 3 |
| disable / enable | flag 2 with `enable` "false" / "true" |
| make admin / make ordinary member | flag 2 with `role` |
| delete a disabled member | flag 0 (sent for any member of a bound enterprise) |
| reset a password | none: the ISV never sees passwords |

A new member gets a random initial password through the development sender (`passwords`),
which they change at their first sign-in. The message is written before the member is: when it
cannot be, the member is not added (in an import, that row fails and the others go on).
Deleting a member, or resetting their password, ends their sign-ins at the auth centre.
"""

from __future__ import annotations

from typing import Any

from identity.notify import mask
from identity.simulator.console import deliveries as calls
from identity.simulator.console import forms
from identity.simulator.console import world as edits
from identity.simulator.console.passwords import initial_password, password_problems
from identity.simulator.console.state import Console, Done
from identity.simulator.console.world import NotAllowed
from identity.simulator.scenario import MemberSpec, TenantSpec


async def add_member(console: Console, tenant_id: str, fields: dict[str, Any]) -> Done:
    """`fields` from `forms.member`; the member may sign in once the app is authorised."""
    password = initial_password(str(fields["user_name"]))
    new = fields | {"password": password, "must_change_password": True, "authorised": False}
    edits.add_member(console.scenario, tenant_id, new)  # refused here, before any message
    tenant = edits.tenant_of(console.scenario, tenant_id)
    account = f"{fields['user_name']}@{tenant.tenant_code}"
    await console.messages.initial_password(str(fields["mobile"]), account, password)
    console.world.replace(edits.add_member(console.scenario, tenant_id, new))
    to = mask("sms", str(fields["mobile"]))
    return Done(
        f"已添加成员 {account}，初始密码已通过短信发送至 {to}",
        f"{account} added; the initial password went by SMS to {to}",
    )


def _department(tenant: TenantSpec, given: str) -> str:
    """An import row's department: its code, or a name only one department has."""
    given = given.strip()
    if any(d.org_code == given for d in tenant.departments):
        return given
    named = [d.org_code for d in tenant.departments if d.org_name == given]
    if len(named) == 1:
        return named[0]
    if named:
        raise NotAllowed(
            f"有多个部门名为 {given}：请填写部门编码",
            f"Several departments are named {given}: give its code",
        )
    raise NotAllowed(f"部门 {given} 不存在", f"There is no department {given}")


async def import_members(
    console: Console, tenant_id: str, rows: list[tuple[int, dict[str, str]]]
) -> Done:
    """Each row is checked against the enterprise and the rows before it, and its initial
    password sent; a row refused (or whose message could not be written) adds nothing. The
    members that passed are then added at once: the enterprise is validated once for the
    import, not once per row, which would grow with the square of its size and hold up the
    auth centre serving on the same event loop."""
    tenant = edits.tenant_of(console.scenario, tenant_id)
    taken = {m.user_name for m in tenant.members}
    results: list[dict[str, Any]] = []
    passed: list[tuple[int, MemberSpec]] = []
    for line, values in rows:
        row = {"line": line, "account": values.get("account", "").strip()}
        try:
            fields = forms.member(values, _department(tenant, values.get("department", "")))
            password = initial_password(str(fields["user_name"]))
            new = fields | {"password": password, "must_change_password": True}
            member = edits.new_member(tenant, new | {"authorised": False}, taken)
            account = f"{member.user_name}@{tenant.tenant_code}"
            await console.messages.initial_password(str(member.mobile), account, password)
        except NotAllowed as exc:
            results.append(row | {"added": False, "zh": exc.zh, "en": exc.en})
            continue
        taken.add(member.user_name)
        passed.append((len(results), member))
        results.append(row | {"added": True, "zh": "已添加", "en": "added"})
    _add_imported(console, tenant_id, passed, results)
    added = sum(1 for r in results if r["added"])
    failed = len(results) - added
    return Done(
        f"导入完成：添加 {added} 名，失败 {failed} 行",
        f"Import done: {added} added, {failed} failed",
        imported=results,
    )


def _add_imported(
    console: Console,
    tenant_id: str,
    passed: list[tuple[int, MemberSpec]],
    results: list[dict[str, Any]],
) -> None:
    """Add the rows that passed, at once. Another request may have changed the enterprise
    while the messages were written (a department deleted, the same account added): then one
    by one, each refused row saying why."""
    if not passed:
        return
    try:
        added = [member for _index, member in passed]
        console.world.replace(edits.add_members(console.scenario, tenant_id, added))
        return
    except NotAllowed:
        pass
    for index, member in passed:
        try:
            console.world.replace(edits.add_members(console.scenario, tenant_id, [member]))
        except NotAllowed as exc:
            results[index] |= {"added": False, "zh": exc.zh, "en": exc.en}


async def _changed(
    console: Console, tenant_id: str, user_name: str, zh: str, en: str, **changes: Any
) -> Done:
    """Change one member; authSync 2 when the ISV knows them as authorised."""
    before = edits.member_of(edits.tenant_of(console.scenario, tenant_id), user_name)
    after = edits.change_member(console.scenario, tenant_id, user_name, **changes)
    console.world.replace(after)
    tenant = edits.tenant_of(after, tenant_id)
    member = edits.member_of(tenant, user_name)
    told = before.authorised and console.bound(tenant)
    return await console.send(tenant, zh, en, calls.members([member], 2) if told else [])


async def set_enabled(console: Console, tenant_id: str, user_name: str, enable: bool) -> Done:
    tenant = edits.tenant_of(console.scenario, tenant_id)
    account = f"{user_name}@{tenant.tenant_code}"
    if edits.member_of(tenant, user_name).enable == enable:
        state = (
            ("已是启用状态", "is enabled already") if enable else ("已是禁用状态", "is disabled")
        )
        raise NotAllowed(f"{account} {state[0]}", f"{account} {state[1]}")
    zh, en = ("已启用", "enabled") if enable else ("已禁用", "disabled")
    return await _changed(
        console, tenant_id, user_name, f"{account} {zh}", f"{account} {en}", enable=enable
    )


async def set_role(console: Console, tenant_id: str, user_name: str, role: str) -> Done:
    if role not in ("admin", "user"):
        raise NotAllowed("角色须为 admin 或 user", "The role must be admin or user")
    tenant = edits.tenant_of(console.scenario, tenant_id)
    account = f"{user_name}@{tenant.tenant_code}"
    zh = "管理员" if role == "admin" else "普通成员"
    return await _changed(
        console, tenant_id, user_name, f"{account} 现为{zh}", f"{account} is now {role}", role=role
    )


async def delete_member(console: Console, tenant_id: str, user_name: str) -> Done:
    """Only a disabled member; authSync 0 whenever the enterprise is bound."""
    tenant = edits.tenant_of(console.scenario, tenant_id)
    member = edits.member_of(tenant, user_name)
    after = edits.delete_member(console.scenario, tenant_id, user_name)
    console.world.replace(after)
    console.issuer.end_member(tenant_id, user_name)
    account = f"{user_name}@{tenant.tenant_code}"
    sends = calls.members([member], 0) if console.bound(tenant) else []
    after_tenant = edits.tenant_of(after, tenant_id)
    return await console.send(after_tenant, f"已删除 {account}", f"{account} deleted", sends)


async def authorise(
    console: Console, tenant_id: str, user_names: list[str], authorised: bool
) -> Done:
    """Authorise the app to members (authSync 1), or cancel it (3); those already so are
    left out."""
    tenant = edits.tenant_of(console.scenario, tenant_id)
    if not console.bound(tenant):
        raise NotAllowed("请先绑定应用", "Bind the app to the enterprise first")
    asked = set(user_names)
    names = [
        m.user_name for m in tenant.members if m.user_name in asked and m.authorised != authorised
    ]
    if not names:
        raise NotAllowed(
            "没有需要更改授权的成员" if authorised else "没有已授权的成员",
            "Nobody left to authorise" if authorised else "Nobody is authorised there",
        )
    after = edits.change_members(console.scenario, tenant_id, names, authorised=authorised)
    console.world.replace(after)
    tenant = edits.tenant_of(after, tenant_id)
    chosen = set(names)
    changed: list[MemberSpec] = [m for m in tenant.members if m.user_name in chosen]
    accounts = ", ".join(f"{n}@{tenant.tenant_code}" for n in names)
    zh, en = ("已授权", "authorised") if authorised else ("已取消授权", "authorisation cancelled")
    sends = calls.members(changed, 1 if authorised else 3)
    return await console.send(tenant, f"{zh}：{accounts}", f"{en}: {accounts}", sends)


async def authorise_department(
    console: Console, tenant_id: str, org_code: str, authorised: bool
) -> Done:
    """Every member of the department and of those below it, as they are now."""
    tenant = edits.tenant_of(console.scenario, tenant_id)
    edits.department_of(tenant, org_code)
    below = tenant.subtree(org_code)
    names = [m.user_name for m in tenant.members if m.org_code in below]
    return await authorise(console, tenant_id, names, authorised)


# --- password resets (`resets`) -----------------------------------------------------------------


async def request_reset(
    console: Console, tenant_id: str, user_name: str, password: str, again: str
) -> tuple[str, str]:
    """Check the new password and the limits, send the code to the administrator's phone:
    (reset id, where the code went, masked)."""
    buyer = console.scenario.buyer
    tenant = edits.tenant_of(console.scenario, tenant_id)
    member = edits.member_of(tenant, user_name)
    problems = password_problems(password, again, user_name, member.password)
    if problems:
        raise NotAllowed(" ".join(p[0] for p in problems), " ".join(p[1] for p in problems))
    if buyer is None:
        raise NotAllowed("此场景没有买家账号", "The scenario has no buyer")
    reset_id, code = console.resets.start((tenant_id, user_name), password)  # counted now
    try:
        await console.messages.reset_code(buyer.mobile, f"{user_name}@{tenant.tenant_code}", code)
    except NotAllowed:
        console.resets.unsent(reset_id)
        raise
    return reset_id, mask("sms", buyer.mobile)


async def confirm_reset(
    console: Console, tenant_id: str, user_name: str, reset_id: str, code: str
) -> Done:
    pending = console.resets.confirm(reset_id, (tenant_id, user_name), code)
    after = edits.change_member(
        console.scenario,
        tenant_id,
        user_name,
        password=pending.password,
        must_change_password=True,
    )
    console.world.replace(after)
    console.issuer.end_member(tenant_id, user_name)
    account = f"{user_name}@{edits.tenant_of(after, tenant_id).tenant_code}"
    return Done(
        f"已重置 {account} 的密码：成员下次登录须修改",
        f"The password of {account} is reset: they change it at their next sign-in",
    )
