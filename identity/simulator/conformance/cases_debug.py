"""Debug calls (testFlag 1): what the seller's debug tool sends and the dial test replays twice
a day from the saved cases, with arbitrary values (§0.3, §0.4, §3.0, §4.0). The bodies are the
contract's own examples (§3.1-§3.5, §4.2-§4.7, §8.2), masked values and all; each must be
answered as a success, repeatably, whatever the ids name."""

from __future__ import annotations

from typing import Any

from identity.marketplace.client_secret import encrypt_client_secret
from identity.simulator.conformance.catalogue import Consequence as C
from identity.simulator.conformance.catalogue import Need, spec
from identity.simulator.conformance.checks import accepted, instance_id
from identity.simulator.conformance.session import Run

INSTANCE = "10e758d0-31ad-4c4b-8f1b-81d03469a10e"
ORDER = {"orderId": "CS2211181819B4LVS", "orderLineId": "CS2211181819B4LVS-000001"}
KIT_INSTANCE, KIT_APP = "hua********23456", "KSIDJF1234456"
KIT_TENANT = "68cbc86****************880d92f36422fa0e"

BASIC: dict[str, dict[str, str]] = {
    "newInstance": {"businessId": "87b94795-0603-4e24-8ae5-69420d60e3c8", **ORDER},
    "queryInstance": {"instanceId": INSTANCE},
    "refreshInstance": {"expireTime": "20221124023618256", "instanceId": INSTANCE, **ORDER,
                        "productId": "OFFI461867333479178240", "scene": "RENEWAL"},
    "updateInstanceStatus": {"instanceId": INSTANCE, "status": "FREEZE"},
    "releaseInstance": {"instanceId": INSTANCE, **ORDER},
    "upgradeInstance": {"instanceId": INSTANCE, **ORDER},
}  # fmt: skip


def kit_examples(stamp: str, client_secret: str) -> dict[str, dict[str, Any]]:
    """The contract's kit examples, testFlag 1; `timeStamp` now, as the debug tool sends it."""
    common = {"instanceId": KIT_INSTANCE, "tenantId": KIT_TENANT}
    orgs = ('[{orgCode:"00000001", orgName:"产品部", parentCode:"265789314" },'
            '{orgCode:"265789314", orgName:"总部", parentCode:"" }]')  # fmt: skip
    user = {"userName": "zhangsan01", "name": "张三", "orgCode": "10000", "role": "admin",
            "enable": "true"}  # fmt: skip
    return {
        "tenantSync": {**common, "orderId": "CS1906666666ABCDE", "tenantCode": "******",
                       "name": "******test", "domainName": "https://example.tenantaccount.com",
                       "flag": 1},
        "applicationSync": {**common, "appId": KIT_APP, "clientId": "bc20*******880d92f3",
                            "clientSecret": client_secret, "flag": 1},
        "authSync": {**common, "appId": KIT_APP, "userList": [user],
                     "currentSyncTime": stamp, "flag": 1},
        "singleOrgSync": {**common, "orgCode": "10000", "orgName": "开发部", "parentCode": "",
                          "flag": 1},
        "allOrgSync": {**common, "orgInfoList": orgs},
    }  # fmt: skip


SPECS = [
    spec(f"debug.{name}", "§4.0, §0.3", f"{name}, testFlag \"1\", the contract's example body",
         "000000" + (" with an instanceId" if name == "newInstance" else ""), C.DIAL)
    for name in BASIC
] + [
    spec(f"debug.{name}", "§3.0, §0.3", f"{name}, testFlag 1, the contract's example body "
         "(arbitrary ids)", "000000", C.DIAL,
         *((Need.PUBLIC_KEY,) if name == "applicationSync" else ()))
    for name in ("tenantSync", "applicationSync", "authSync", "singleOrgSync", "allOrgSync")
]  # fmt: skip


async def run_debug(run: Run) -> None:
    for activity, fields in BASIC.items():
        if case := run.case(f"debug.{activity}"):
            body = {"activity": activity, **fields, "testFlag": "1"}
            checks = (accepted, instance_id) if activity == "newInstance" else (accepted,)
            case.expect(await run.line.basic(body), *checks)
    key = run.options.public_key
    secret = encrypt_client_secret(key, "debug-client-secret") if key else ""
    stamp = run.stamp()
    for name, fields in kit_examples(stamp, secret).items():
        if case := run.case(f"debug.{name}"):
            sent = {**fields, "testFlag": 1, "timeStamp": stamp}
            case.expect(await run.line.kit(name, sent), accepted)
