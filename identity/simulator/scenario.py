"""The world a simulated KooGallery plays: one app and the enterprises bound to it.

A scenario file is JSON in the wire's camelCase:

    {"appId": "demo-app",
     "tenants": [{"tenantId": "t-acme-0001", "tenantCode": "acme", "name": "ACME",
                  "clientId": "acme-client-id", "clientSecret": "…",
                  "order": {"orderId": "CS-ACME-0001", "orderLineId": "CS-ACME-0001-1",
                            "businessId": "acme-0001", "productId": "OFFI-DEMO"},
                  "departments": [{"orgCode": "acme", "orgName": "ACME", "parentCode": ""}],
                  "members": [{"userName": "alice", "name": "Alice", "orgCode": "acme",
                               "role": "admin", "password": "…", "enable": true,
                               "authorised": true}]}]}

Per tenant this is what the marketplace knows and the ISV learns only through syncs: the tenant
(tenantSync, §3.1), its (tenant, app) OAuth client (applicationSync, §3.2), its department tree
(allOrgSync, §3.5), its members (authSync, §3.3) and the order it bought (newInstance, §4.2).
`password` never leaves the simulator: the ISV never sees passwords (§6). `enable` is the
member's directory state (a disabled member arrives with `enable:"false"`); `authorised` says
whether the app is authorised to them, i.e. whether provisioning sends them in authSync flag 1.

An optional `buyer` is the enterprise administrator who signs in to the buyer's console
(identity/simulator/console, §6): the tenants whose order names their `customerId` are theirs.
A member's `mustChangePassword` makes the auth centre ask for a new password at their next
sign-in (an initial or reset password, §6).

Validation is the one rule of what the marketplace can hold, for a scenario file and for every
change the console makes alike. It refuses duplicate codes and accounts, a member in an unknown
department, a parent that does not exist, a department tree with a cycle, two departments of one
name under the same parent (§3.4-§3.5, §6), more than 5 enterprises for the buyer (§6), and a
world without tenants unless a buyer can create one. It deliberately allows two tenants to share
a `clientId`: that misconfiguration is something tests must be able to stage (§5.5). A shared
`clientId` must then share its `clientSecret`, since it names one OAuth client. A broken rule
raises `Conflict`, which carries the reason in Chinese too, for the console's pages.

`World` holds the scenario being served now; the console replaces it whole on each change.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from identity.errors import describe_validation

DEMO_SCENARIO = "demo_scenario.json"
MAX_ENTERPRISES = 5
"""Enterprises one administrator account may create or manage (§6)."""

Id64 = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Opt64 = Annotated[str, StringConstraints(max_length=64)]


class ScenarioError(ValueError):
    """A scenario file that cannot be read, or a name the scenario does not hold."""


class Conflict(ValueError):
    """A world the marketplace could not hold; `str()` in English, `zh` in Chinese."""

    def __init__(self, en: str, zh: str) -> None:
        super().__init__(en)
        self.en, self.zh = en, zh


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True
    )


class Order(_Model):
    """The purchase behind the tenant's instance. V2 newInstance carries only orderId,
    orderLineId and businessId (§4.2); anything else (productId, customerId, …) is kept as
    information for the reader and never sent."""

    model_config = ConfigDict(extra="allow")

    order_id: Id64
    order_line_id: Id64
    business_id: Id64 | None = None
    """businessId of the first newInstance (the purchase). Left out: a fresh one is made."""
    product_id: Opt64 | None = None
    customer_id: Annotated[str, StringConstraints(max_length=100)] | None = None


class DepartmentSpec(_Model):
    org_code: Id64
    org_name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    parent_code: Opt64 = ""


class MemberSpec(_Model):
    """A member (联营账号, §0.1, §3.3); the login name is `{userName}@{tenantCode}`."""

    user_name: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^@]+$")]
    name: Annotated[str, StringConstraints(max_length=64)]
    org_code: Id64
    role: Literal["user", "admin"] = "user"
    password: Annotated[str, StringConstraints(min_length=1)]
    mobile: Annotated[str, StringConstraints(max_length=32)] | None = None
    email: Annotated[str, StringConstraints(max_length=128)] | None = None
    position: Opt64 | None = None
    employee_code: Opt64 | None = None
    employee_type: Annotated[int, Field(ge=1, le=4)] | None = None
    work_place: Annotated[str, StringConstraints(max_length=256)] | None = None
    entry_date: Annotated[str, StringConstraints(max_length=20)] | None = None
    enable: bool = True
    authorised: bool = True
    must_change_password: bool = False


class TenantSpec(_Model):
    tenant_id: Id64
    tenant_code: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^@]+$")]
    name: Annotated[str, StringConstraints(max_length=255)]
    client_id: Id64
    client_secret: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    order: Order
    departments: list[DepartmentSpec] = []
    members: list[MemberSpec] = []

    @model_validator(mode="after")
    def _consistent(self) -> TenantSpec:
        codes = [d.org_code for d in self.departments]
        _unique(codes, f"tenant {self.tenant_code}: orgCode", "部门编码 {} 已存在")
        _unique(
            [m.user_name for m in self.members],
            f"tenant {self.tenant_code}: userName",
            f"账号 {{}}@{self.tenant_code} 已存在",
        )
        for d in self.departments:
            if d.parent_code and d.parent_code not in codes:
                raise Conflict(
                    f"department {d.org_code}: parentCode {d.parent_code} unknown",
                    f"部门 {d.org_code} 的上级部门 {d.parent_code} 不存在",
                )
        siblings: set[tuple[str, str]] = set()
        for d in self.departments:
            if (d.parent_code, d.org_name) in siblings:
                raise Conflict(
                    f"department {d.org_code}: orgName {d.org_name} is taken under its parent",
                    f"同一上级部门下已有名为 {d.org_name} 的部门",
                )
            siblings.add((d.parent_code, d.org_name))
        self._no_cycle()
        for m in self.members:
            if m.org_code not in codes:
                raise Conflict(
                    f"member {m.user_name}: orgCode {m.org_code} unknown",
                    f"成员 {m.user_name} 的部门 {m.org_code} 不存在",
                )
        return self

    def _no_cycle(self) -> None:
        """Every department reaches the top by its parents: the tree stays a tree (§3.4)."""
        parents = {d.org_code: d.parent_code for d in self.departments}
        for start in parents:
            seen, code = {start}, parents[start]
            while code:
                if code in seen:
                    raise Conflict(
                        f"department {start}: its parents make a cycle through {code}",
                        f"部门 {start} 的上级部门形成了环（经过 {code}）",
                    )
                seen.add(code)
                code = parents[code]

    def member(self, user_name: str) -> MemberSpec:
        for m in self.members:
            if m.user_name == user_name:
                return m
        raise ScenarioError(f"tenant {self.tenant_code} has no member {user_name!r}")

    def department(self, org_code: str) -> DepartmentSpec:
        for d in self.departments:
            if d.org_code == org_code:
                return d
        raise ScenarioError(f"tenant {self.tenant_code} has no department {org_code!r}")

    @property
    def authorised_members(self) -> list[MemberSpec]:
        return [m for m in self.members if m.authorised]

    def subtree(self, org_code: str) -> set[str]:
        """The department and every department below it."""
        found, frontier = {org_code}, [org_code]
        while frontier:
            parent = frontier.pop()
            for d in self.departments:
                if d.parent_code == parent and d.org_code not in found:
                    found.add(d.org_code)
                    frontier.append(d.org_code)
        return found


class BuyerSpec(_Model):
    """The enterprise administrator (买家, §6) who signs in to the buyer's console. Reset codes
    for members' passwords go to `mobile`; the enterprises whose order names `customerId` are
    the ones they manage."""

    customer_id: Id64
    account: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^\S+$")]
    name: Annotated[str, StringConstraints(max_length=64)] = ""
    password: Annotated[str, StringConstraints(min_length=1)]
    mobile: Annotated[str, StringConstraints(min_length=1, max_length=32)]


class Scenario(_Model):
    app_id: Id64
    tenants: list[TenantSpec]
    other_app_ids: list[Id64] = []
    """Further apps of the ISV whose callbacks the auth centre accepts in Flow B, for tenants
    that bought several products (each sent with its own sender); Flow A serves `app_id`."""
    buyer: BuyerSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if not self.tenants and self.buyer is None:
            raise Conflict("a scenario needs at least one tenant", "至少需要一个企业")
        _unique([t.tenant_id for t in self.tenants], "tenantId", "企业 ID {} 已存在")
        _unique([t.tenant_code for t in self.tenants], "tenantCode", "企业标识 {} 已被使用")
        secrets: dict[str, str] = {}
        for t in self.tenants:
            if secrets.setdefault(t.client_id, t.client_secret) != t.client_secret:
                raise ValueError(f"clientId {t.client_id} is given two different clientSecrets")
        managed = len(self.buyer_tenants)
        if self.buyer is not None and managed > MAX_ENTERPRISES:
            raise Conflict(
                f"buyer {self.buyer.account} would manage {managed} enterprises: "
                f"at most {MAX_ENTERPRISES}",
                f"一个管理员最多管理 {MAX_ENTERPRISES} 个企业",
            )
        return self

    @property
    def buyer_tenants(self) -> list[TenantSpec]:
        """The enterprises the buyer manages: those bought with their customerId."""
        if self.buyer is None:
            return []
        return [t for t in self.tenants if t.order.customer_id == self.buyer.customer_id]

    def tenant(self, key: str) -> TenantSpec:
        """A tenant by tenantId or tenantCode (what the CLI's TENANT argument accepts)."""
        for t in self.tenants:
            if key in (t.tenant_id, t.tenant_code):
                return t
        raise ScenarioError(f"the scenario has no tenant with id or code {key!r}")

    def tenants_of_client(self, client_id: str) -> list[TenantSpec]:
        return [t for t in self.tenants if t.client_id == client_id]


def _unique(values: list[str], what: str, zh: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise Conflict(f"{what} {value} appears twice", zh.format(value))
        seen.add(value)


class World:
    """The scenario the simulator serves now. Every part (the auth centre, its OAuth and CAS
    logins, the order API, the console) reads it here and keeps no copy; the console replaces
    it whole with another validated `Scenario`, so a reader never sees half a change."""

    def __init__(self, scenario: Scenario) -> None:
        self._scenario = scenario

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    def replace(self, scenario: Scenario) -> None:
        self._scenario = scenario


def idp_user_id(tenant_id: str, user_name: str) -> str:
    """A stable IdP user id shaped like OneAccess's `20201029190841785-CB37-8BD36B…` (§5.2
    step 6): a 17-digit creation time and hex groups, derived from the member's key so that it
    is the same in every run and for every process."""
    digest = hashlib.sha256(f"{tenant_id}/{user_name}".encode()).hexdigest().upper()
    created = 20_200_101_000_000_000 + int(digest[:12], 16) % 10**14
    return f"{created}-{digest[12:16]}-{digest[16:28]}"


def parse_scenario(text: str | bytes, source: str = "scenario") -> Scenario:
    try:
        return Scenario.model_validate_json(text)
    except ValidationError as exc:
        problems = describe_validation(exc, limit=5, whole="file")
        raise ScenarioError(f"{source} is not a valid scenario: {problems}") from None


def load_scenario(path: Path | None = None) -> Scenario:
    """Read a scenario file; without a path, the built-in demo (`demo_scenario.json`)."""
    if path is None:
        text = resources.files("identity.simulator").joinpath(DEMO_SCENARIO).read_text("utf-8")
        return parse_scenario(text, DEMO_SCENARIO)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"cannot read {path}: {exc}") from None
    return parse_scenario(text, str(path))


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as a file would hold it (used by tests to write one)."""
    return json.dumps(
        scenario.model_dump(by_alias=True, exclude_none=True), ensure_ascii=False, indent=2
    )
