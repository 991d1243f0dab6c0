"""The run's enterprises, members and orders, and the bodies of the calls about them.

Every identifier carries the run's random id, so the kit can run again and again against the
same endpoint (and beside other runs) without meeting what an earlier run left. The world is a
simulator `Scenario`: it is what the kit's auth centre signs members in from and what its
query-order API answers (`probe`), so that the endpoint and the kit agree on every tenant, client
and order by construction. Bodies use the contract's field names and JSON types (kit numbers are
numbers, `enable` is a string, §3; basic values are strings, §4): they are the simulator's
sender's own (`sender.…_payload`), given the run's sync time, auth centre and app.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from identity.marketplace.client_secret import encrypt_client_secret
from identity.simulator.scenario import MemberSpec, Order, Scenario, TenantSpec
from identity.simulator.sender import (
    all_org_sync_payload,
    application_sync_payload,
    auth_sync_payload,
    kit_payload,
    new_instance_payload,
    tenant_sync_payload,
)

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


# --- bodies: the sender's builders (`sender.…_payload`), given the run's time and auth centre ---


def new_instance(order: Order, business_id: str, **more: str) -> dict[str, Any]:
    return new_instance_payload(order, business_id) | more


def basic(activity: str, instance_id: str, **fields: str) -> dict[str, Any]:
    return {"activity": activity, "instanceId": instance_id, **fields, "testFlag": "0"}


kit = kit_payload


def tenant_sync(
    tenant: TenantSpec, instance_id: str, stamp: str, domain: str, flag: int, **more: Any
) -> dict[str, Any]:
    """A seller's test tenant (instanceId empty) has no order either (§0.4)."""
    order = {} if instance_id else {"orderId": ""}
    return tenant_sync_payload(
        tenant, instance_id, stamp, domain=domain, flag=flag, **order, **more
    )


def application_sync(
    tenant: TenantSpec, instance_id: str, stamp: str, app_id: str,
    public_key: rsa.RSAPublicKey | None, flag: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """The secret RSA-OAEP encrypted with the seller's public key as KooGallery does (§2.7), or
    left empty for a delete when there is no key."""
    secret = encrypt_client_secret(public_key, tenant.client_secret) if public_key else ""
    return application_sync_payload(
        tenant, instance_id, stamp, app_id=app_id, secret=secret, flag=flag
    )


def auth_sync(
    tenant: TenantSpec, instance_id: str, stamp: str, app_id: str,
    members: list[MemberSpec], flag: int, *, enable: bool | None = None, test: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """`currentSyncTime` equal to `timeStamp` (§3.3)."""
    return auth_sync_payload(
        tenant, instance_id, members, app_id=app_id, sync_time=stamp, stamp=stamp, flag=flag,
        enable=enable, test=test,
    )  # fmt: skip


all_org_sync = all_org_sync_payload


def members_of(tenant: TenantSpec, *names: str) -> list[MemberSpec]:
    return [tenant.member(name) for name in names]
