"""The marketplace's query-order open API, as the simulator serves it (contract §4.2).

`GET /api/mkp-openapi-public/global/v1/order/query?orderId=…&orderLineId=…`, signed with the
seller's access key pair as Huawei Cloud's API gateway (APIG) expects: the signature is checked
by computing it again with Huawei's own signer over what arrived (the headers the request says
it signed, its query, its `X-Sdk-Date` within 15 minutes). It answers from the scenario's
orders, in the shape the marketplace answers: `resultCode` `MKT.0000` and `orderInfo` (the
order's type and time, its line with period, expiry and product, the buyer), or a result
without `orderInfo` for an order it does not know. A refused signature gets the gateway's own
401 answer (`APIGW.0301`).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

from identity.marketplace.orders import QUERY_PATH, SUCCESS, AccessKey
from identity.simulator.scenario import Scenario, TenantSpec, World

DEMO_KEY = AccessKey("SIMULATORDEMOAK0001", "simulator-demo-secret-access-key-0001")
"""The access key pair the simulator accepts unless told another (`identity demo` sets it)."""
CLOCK_SKEW = timedelta(minutes=15)
NOT_FOUND = "MKT.0404"
"""The simulator's result code for an order it does not know; the marketplace's own differs,
and identity reads only that no `orderInfo` came."""
_AUTHORIZATION = re.compile(
    r"^SDK-HMAC-SHA256 Access=([^,\s]+), SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)

router = APIRouter()


@dataclass(frozen=True)
class OrderDesk:
    """What the route answers from: the orders of the world as it is now (an enterprise the
    buyer's console created is bought there too) and the one key it accepts."""

    world: World
    key: AccessKey

    @property
    def scenario(self) -> Scenario:
        return self.world.scenario


def _refused(detail: str) -> JSONResponse:
    body = {
        "error_code": "APIGW.0301",
        "error_msg": f"Incorrect IAM authentication information: {detail}",
    }
    return JSONResponse(body, status_code=401)


def signature_problem(key: AccessKey, request: Request, now: datetime) -> str | None:
    """Why the request's APIG signature is not `key`'s over what arrived, or None."""
    found = _AUTHORIZATION.match(request.headers.get("authorization", ""))
    if found is None:
        return "no SDK-HMAC-SHA256 authorization"
    access, names, _signature = found.groups()
    if not hmac.compare_digest(access, key.ak):
        return "unknown access key"
    signed = names.split(";")
    if not {"host", "x-sdk-date"} <= set(signed):
        return "host and x-sdk-date must be signed"
    try:
        moment = datetime.strptime(request.headers.get("x-sdk-date", ""), "%Y%m%dT%H%M%SZ")
    except ValueError:
        return "X-Sdk-Date is not yyyyMMddTHHmmssZ"
    if abs(moment.replace(tzinfo=UTC) - now) > CLOCK_SKEW:
        return "X-Sdk-Date is more than 15 minutes off"
    again = SdkRequest(
        method=request.method,
        schema=request.url.scheme,
        host=request.headers.get("host", ""),
        resource_path=request.url.path,
        query_params=list(request.query_params.multi_items()),
        header_params={name: request.headers.get(name, "") for name in signed},
    )
    expected = Signer(key).sign(again).header_params["Authorization"]
    if not hmac.compare_digest(expected, request.headers["authorization"]):
        return "verify aksk signature fail"
    return None


def order_info(tenant: TenantSpec) -> dict[str, Any]:
    """The tenant's order as the API answers it; the scenario's order may add the product's
    `skuCode`, `productName`, `periodType`, `periodNumber`, `expireTime` and the buyer's
    `customerName`, `mobilePhone` and `email`."""
    order = tenant.order
    extra: dict[str, Any] = dict(order.model_extra or {})
    return {
        "orderId": order.order_id,
        "orderType": extra.get("orderType", "NEW"),
        "createTime": extra.get("createTime", "20261201080000"),
        "orderLine": [
            {
                "orderLineId": order.order_line_id,
                "chargingMode": extra.get("chargingMode", "PERIOD"),
                "periodType": extra.get("periodType", "year"),
                "periodNumber": extra.get("periodNumber", 1),
                "expireTime": extra.get("expireTime", "20271201235959"),
                "productInfo": [
                    {
                        "productId": order.product_id or "OFFI-DEMO",
                        "skuCode": extra.get("skuCode", "demo-sku-basic"),
                        "linearValue": extra.get("linearValue", 50),
                        "productName": extra.get("productName", f"{tenant.name} demo product"),
                    }
                ],
                "extendParams": [],
            }
        ],
        "buyerInfo": {
            "customerId": order.customer_id or tenant.tenant_id,
            "customerName": extra.get("customerName", tenant.tenant_code),
            "customerRealName": extra.get("customerRealName", tenant.name),
            "customerType": 0,
            "mobilePhone": extra.get("mobilePhone"),
            "email": extra.get("email"),
            "userId": None,
            "userName": None,
        },
        "extendParams": [],
    }


@router.get(QUERY_PATH)
async def query_order(request: Request, orderId: str = "", orderLineId: str = "") -> JSONResponse:  # noqa: N803
    desk: OrderDesk = request.app.state.order_desk
    problem = signature_problem(desk.key, request, datetime.now(UTC))
    if problem is not None:
        return _refused(problem)
    for tenant in desk.scenario.tenants:
        order = tenant.order
        if order.order_id == orderId and orderLineId in ("", order.order_line_id):
            return JSONResponse(
                {"resultCode": SUCCESS, "resultMsg": "Success", "orderInfo": order_info(tenant)}
            )
    return JSONResponse({"resultCode": NOT_FOUND, "resultMsg": f"order {orderId[:64]} not found"})
