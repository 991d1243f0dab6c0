"""The console's pages, rendered from `templates` with autoescaping: every value shown (names,
codes, the ISV's resultMsg, a CSV cell) is escaped. Passwords and codes are never shown."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import DictLoader, Environment
from markupsafe import Markup

from identity.simulator.console import templates
from identity.simulator.console.access import Flash, Session
from identity.simulator.console.deliveries import Delivery
from identity.simulator.console.state import Console
from identity.simulator.console.world import NotAllowed
from identity.simulator.scenario import MAX_ENTERPRISES, DepartmentSpec, MemberSpec, TenantSpec

_ENV = Environment(
    autoescape=True,
    loader=DictLoader(
        {
            "base": templates.BASE,
            "parts": templates.PARTS,
            "sign_in": templates.SIGN_IN,
            "home": templates.HOME,
            "enterprise": templates.ENTERPRISE,
            "reset": templates.RESET,
            "refused": templates.REFUSED,
        }
    ),
)
_ENV.filters["path"] = lambda value: quote(str(value), safe="")
"""A value as one path segment: `/` and `?` escaped too."""
STATES = {
    "waiting": "未发送 / not sent",
    "delivered": "已送达 / delivered",
    "refused": "被拒绝 / refused",
    "failed": "未送达 / not delivered",
}

Error = tuple[str, NotAllowed] | None
"""Which form failed (its section), and why."""


class _Values(dict[str, str]):
    """What was typed in a refused form, shown again; "" for any field not given."""

    def __missing__(self, key: str) -> str:
        return ""


def _render(name: str, **values: Any) -> str:
    style = Markup(templates.STYLE)  # noqa: S704 - our own constant, not input
    return _ENV.get_template(name).render(style=style, states=STATES, **values)


def sign_in(csrf: str, *, account: str = "", error: str | None = None) -> str:
    return _render("sign_in", csrf=csrf, account=account, error=error, buyer=None)


def refused(title: str, message: str, back: str | None = None) -> str:
    return _render("refused", title=title, message=message, back=back, buyer=None)


def _common(console: Console, session: Session, flash: Flash | None) -> dict[str, Any]:
    buyer = console.scenario.buyer
    delivery: Delivery | None = None
    if flash is not None and flash.delivery is not None:
        delivery = console.outbox.get(flash.delivery)
    return {
        "buyer": (buyer.name or buyer.account) if buyer else "",
        "csrf": session.csrf,
        "flash": flash,
        "delivery": delivery,
    }


def home(
    console: Console,
    session: Session,
    flash: Flash | None,
    *,
    error: Error = None,
    values: dict[str, str] | None = None,
) -> str:
    return _render(
        "home",
        **_common(console, session, flash),
        tenants=console.scenario.buyer_tenants,
        unbound=console.unbound,
        most=MAX_ENTERPRISES,
        undelivered=console.outbox.undelivered(),
        error=error,
        values=_Values(values or {}),
    )


def tree(tenant: TenantSpec) -> list[tuple[DepartmentSpec, int]]:
    """The departments top down, each with its depth, siblings in the order they came."""
    children: dict[str, list[DepartmentSpec]] = {}
    for department in tenant.departments:
        children.setdefault(department.parent_code, []).append(department)
    ordered: list[tuple[DepartmentSpec, int]] = []

    def walk(parent: str, depth: int) -> None:
        for child in children.get(parent, []):
            ordered.append((child, depth))
            walk(child.org_code, depth + 1)

    walk("", 0)
    return ordered


def enterprise(
    console: Console,
    session: Session,
    tenant: TenantSpec,
    flash: Flash | None,
    *,
    error: Error = None,
    values: dict[str, str] | None = None,
) -> str:
    counts: dict[str, int] = {}
    for member in tenant.members:
        counts[member.org_code] = counts.get(member.org_code, 0) + 1
    return _render(
        "enterprise",
        **_common(console, session, flash),
        tenant=tenant,
        bound=console.bound(tenant),
        app_id=console.scenario.app_id,
        base=f"/console/enterprises/{quote(tenant.tenant_code, safe='')}",
        sign_in_url=(
            f"{console.setup.identity.rstrip('/')}/sso/login?"
            + urlencode({"tenant": tenant.tenant_code})
        ),
        tree=tree(tenant),
        counts=counts,
        names={d.org_code: d.org_name for d in tenant.departments},
        deliveries=console.outbox.of_tenant(tenant.tenant_id),
        error=error,
        values=_Values(values or {}),
    )


def reset(
    console: Console,
    session: Session,
    tenant: TenantSpec,
    member: MemberSpec,
    *,
    reset_id: str | None = None,
    sent_to: str = "",
    error: Error = None,
) -> str:
    return _render(
        "reset",
        **_common(console, session, None),
        tenant=tenant,
        member=member,
        account=f"{member.user_name}@{tenant.tenant_code}",
        base=(
            f"/console/enterprises/{quote(tenant.tenant_code, safe='')}"
            f"/members/{quote(member.user_name, safe='')}"
        ),
        reset_id=reset_id,
        sent_to=sent_to,
        error=error,
    )
