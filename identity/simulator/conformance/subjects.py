"""The run's enterprises, members and orders, and the bodies of the calls about them.

Every identifier carries the run's random id, so the kit can run again and again against the
same endpoint (and beside other runs) without meeting what an earlier run left. The world is a
simulator `Scenario`: it is what the kit's auth centre signs members in from and what its
query-order API answers (`probe`), so that the endpoint and the kit agree on every tenant, client
and order by construction. Bodies use the contract's field names and JSON types (kit numbers are
numbers, `enable` is a string, §3; basic values are strings, §4) and the simulator's user and
department objects (`sender.user_object`, `sender.org_object`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from identity.marketplace.client_secret import encrypt_client_secret
from identity.simulator.scenario import MemberSpec, Order, Scenario, TenantSpec
from identity.simulator.sender import org_object, user_object

MAIN, SELLER, CONCURRENT, LEGACY, ORDERED = "main", "seller", "concurrent", "legacy", "ordered"


def _departments(run: str, key: str) -> list[dict[str, str]]:
    """A child listed before its parent: allOrgSync's list may come in any order (§3.5)."""
    return [
        {"orgCode": f"{run}-{key}-rd", "orgName": "研发部 R&D", "parentCode": f"{run}-{key}-hq"},
        {"orgCode": f"{run}-{key}-hq", "orgName": "总部 Head office", "parentCode": ""},
        {
            "orgCode": f"{run}-{key}-ops",
            "orgName": "运营部 Operations",
            "parentCode": f"{run}-{key}-hq",
        },
    ]


def _members(run: str, key: str) -> list[dict[str, Any]]:
    hq, rd, ops = (f"{run}-{key}-{d}" for d in ("hq", "rd", "ops"))
    password = secrets.token_urlsafe(12)  # never used: probes get codes, not passwords
    return [
        {"userName": "alice", "name": "Alice 爱丽丝", "orgCode": hq, "role": "admin",
         "password": password, "mobile": "+8613800000001", "email": f"alice@{run}.example.com"},
        {"userName": "bob", "name": "Bob 鲍勃", "orgCode": rd, "password": password,
         "position": "工程师 Engineer", "employeeCode": "E-0002", "employeeType": 1,
         "mobile": "+8613800000002", "email": f"bob@{run}.example.com",
         "workPlace": "南京 Nanjing", "entryDate": "2024-03-01"},
        {"userName": "carol", "name": "Carol", "orgCode": ops, "password": password},
        {"userName": "dave", "name": "Dave", "orgCode": rd, "password": password},
    ]  # fmt: skip


def _tenant(run: str, key: str, order_line: str | None = None) -> dict[str, Any]:
    order_id = f"CS-CONF-{run.upper()}-{key.upper()}"
    return {
        "tenantId": f"conf-{run}-{key}",
        "tenantCode": f"conf{run}{key[:3]}",
        "name": f"一致性测试 Conformance {run} {key}",
        "clientId": f"conf-{run}-{key}-client",
        "clientSecret": secrets.token_urlsafe(24),
        "order": {
            "orderId": order_id,
            "orderLineId": order_line or f"{order_id}-000001",
            "businessId": f"conf-{run}-{key}-b1",
            "productId": "OFFI-CONFORMANCE",
        },
        "departments": _departments(run, key),
        "members": _members(run, key),
    }


@dataclass(frozen=True)
class Subjects:
    run_id: str
    scenario: Scenario

    @classmethod
    def make(cls, app_id: str, run_id: str | None = None) -> Subjects:
        run = run_id or secrets.token_hex(4)
        legacy = _tenant(run, LEGACY)
        legacy["order"]["orderLineId"] = legacy["order"]["orderId"]  # V1 orders have no lines
        tenants = [_tenant(run, MAIN), _tenant(run, SELLER), _tenant(run, CONCURRENT), legacy]
        tenants.append(_tenant(run, ORDERED))
        return cls(run, Scenario.model_validate({"appId": app_id, "tenants": tenants}))

    @property
    def app_id(self) -> str:
        return self.scenario.app_id

    def tenant(self, key: str) -> TenantSpec:
        return self.scenario.tenant(f"conf-{self.run_id}-{key}")

    @property
    def main(self) -> TenantSpec:
        return self.tenant(MAIN)

    def unknown_order(self) -> Order:
        """An order the kit's query-order API does not know."""
        order_id = f"CS-CONF-{self.run_id.upper()}-UNKNOWN"
        return Order(order_id=order_id, order_line_id=f"{order_id}-000001", business_id="x")

    def unknown_id(self, what: str) -> str:
        """An instanceId (or other id) that no endpoint holds."""
        return f"conf-{self.run_id}-no-such-{what}"


# --- bodies -----------------------------------------------------------------------------------


def new_instance(order: Order, business_id: str, **more: str) -> dict[str, Any]:
    return {
        "activity": "newInstance",
        "orderId": order.order_id,
        "orderLineId": order.order_line_id,
        "businessId": business_id,
        "testFlag": "0",
        **more,
    }


def basic(activity: str, instance_id: str, **fields: str) -> dict[str, Any]:
    return {"activity": activity, "instanceId": instance_id, **fields, "testFlag": "0"}


def kit(
    tenant_id: str, instance_id: str, stamp: str, test: int = 0, **fields: Any
) -> dict[str, Any]:
    """The fields every kit call carries (§3.0) around its own."""
    return {
        "instanceId": instance_id,
        "tenantId": tenant_id,
        **fields,
        "testFlag": test,
        "timeStamp": stamp,
    }


def tenant_sync(
    tenant: TenantSpec, instance_id: str, stamp: str, domain: str, flag: int, **more: Any
) -> dict[str, Any]:
    fields = {
        "orderId": tenant.order.order_id if instance_id else "",
        "tenantCode": tenant.tenant_code,
        "name": tenant.name,
        "domainName": domain,
        "flag": flag,
        **more,
    }
    return kit(tenant.tenant_id, instance_id, stamp, **fields)


def application_sync(
    tenant: TenantSpec, instance_id: str, stamp: str, app_id: str,
    public_key: rsa.RSAPublicKey | None, flag: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """The (tenant, app) OAuth client; the secret RSA-OAEP encrypted with the seller's public
    key as KooGallery does (§2.7), or left empty for a delete when there is no key."""
    secret = encrypt_client_secret(public_key, tenant.client_secret) if public_key else ""
    fields: dict[str, Any] = {
        "appId": app_id,
        "clientId": tenant.client_id,
        "clientSecret": secret,
        "flag": flag,
    }
    return kit(tenant.tenant_id, instance_id, stamp, **fields)


def auth_sync(
    tenant: TenantSpec, instance_id: str, stamp: str, app_id: str,
    members: list[MemberSpec], flag: int, *, enable: bool | None = None, test: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """authSync with `currentSyncTime` equal to `timeStamp` (§3.3), the users V2's flat shape."""
    users = [user_object(m, enable=enable) for m in members]
    fields: dict[str, Any] = {
        "appId": app_id,
        "userList": users,
        "currentSyncTime": stamp,
        "flag": flag,
    }
    return kit(tenant.tenant_id, instance_id, stamp, test=test, **fields)


def all_org_sync(tenant: TenantSpec, instance_id: str, stamp: str) -> dict[str, Any]:
    orgs = [org_object(d) for d in tenant.departments]
    return kit(tenant.tenant_id, instance_id, stamp, orgInfoList=orgs)


def members_of(tenant: TenantSpec, *names: str) -> list[MemberSpec]:
    return [tenant.member(name) for name in names]
