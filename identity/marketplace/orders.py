"""The marketplace's query-order open API: who bought which product, read after newInstance.

newInstance names only the order and its line (contract §4.2). The rest (the order's type and
time, each line's product, SKU, period and expiry, the buyer) comes from
`GET {api}/api/mkp-openapi-public/global/v1/order/query?orderId=…&orderLineId=…`, signed with
a Huawei Cloud access key pair as every Huawei Cloud API gateway (APIG) request is:
`SDK-HMAC-SHA256` over a canonical form of the request, sent in `X-Sdk-Date` and
`Authorization`. The signature is Huawei's own signer (`huaweicloudsdkcore`, pure computation);
the call is ours (`httpx2`, with a deadline), so that it never blocks the event loop.

An answer is sorted into what the caller can do with it (`Outcome`): the order confirmed (its
`orderInfo` matching the call), refused (no such order, or another line or product: nothing is
provisioned), or not known yet (the API slow, down, or refusing our own credentials: try again
later). The marketplace's success code here is `MKT.0000`, not the callbacks' `000000`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer

QUERY_PATH = "/api/mkp-openapi-public/global/v1/order/query"
SUCCESS = "MKT.0000"
MAX_ANSWER_BYTES = 256 * 1024
"""An order's answer is a few kilobytes; more is not an order."""


@dataclass(frozen=True)
class AccessKey:
    """A Huawei Cloud access key pair (AK/SK), as the SDK's signer reads credentials."""

    ak: str
    sk: str


def signed_request(
    key: AccessKey, url: str, params: list[tuple[str, str]], now: datetime | None = None
) -> tuple[str, dict[str, str]]:
    """`GET url?params` signed for APIG: the URL to send (its query in the signed, canonical
    form) and the headers, `X-Sdk-Date`, `Host`, `Content-Type` and `Authorization`
    (`SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…`). `now` fixes the date (tests);
    the signature then depends on nothing else."""
    parts = urlsplit(url)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    request = SdkRequest(
        method="GET",
        schema=parts.scheme,
        host=parts.netloc,
        resource_path=parts.path,
        query_params=list(params),
        header_params={
            "Content-Type": "application/json",
            "X-Sdk-Date": moment.strftime("%Y%m%dT%H%M%SZ"),
        },
    )
    signed = Signer(key).sign(request)
    return f"{parts.scheme}://{parts.netloc}{signed.uri}", dict(signed.header_params)


class Kind(StrEnum):
    CONFIRMED = "confirmed"
    REFUSED = "refused"
    """The API answered and the order is not this call's: nothing may be provisioned."""
    CREDENTIALS = "credentials"
    """The API refused our access key: our misconfiguration; the order may be fine."""
    UNAVAILABLE = "unavailable"
    """No usable answer in time (timeout, refused connection, 5xx, not JSON)."""


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    detail: str
    order: dict[str, Any] | None = None
    """`orderInfo`, when confirmed."""

    @property
    def retry(self) -> bool:
        return self.kind in (Kind.CREDENTIALS, Kind.UNAVAILABLE)


CREDENTIAL_CODES = ("APIGW.", "MKT.015")
"""Answer codes that refuse the caller, not the order: the gateway's own (`APIGW.0301`: the
signature or key is wrong, …) and the marketplace's authentication codes."""


def judge(status: int, body: bytes, order_id: str, order_line_id: str) -> Outcome:
    """What one HTTP answer of the query-order API means for the order line asked about."""
    try:
        answer = json.loads(body) if body else None
    except ValueError:
        answer = None
    code = str(answer.get("resultCode") or answer.get("error_code") or "") if isinstance(
        answer, dict
    ) else ""  # fmt: skip
    if status in (401, 403) or code.startswith(CREDENTIAL_CODES):
        return Outcome(Kind.CREDENTIALS, f"HTTP {status} {code}".strip())
    if not isinstance(answer, dict):
        return Outcome(Kind.UNAVAILABLE, f"HTTP {status}, not a JSON object")
    if status >= 500:
        return Outcome(Kind.UNAVAILABLE, f"HTTP {status} {code}".strip())
    if status != 200:
        return Outcome(Kind.UNAVAILABLE, f"HTTP {status} {code}".strip())
    order = answer.get("orderInfo")
    if code != SUCCESS or not isinstance(order, dict):
        return Outcome(Kind.REFUSED, f"no order {order_id} ({code or 'no result code'})")
    if order.get("orderId") != order_id:
        return Outcome(Kind.REFUSED, f"the API answered for order {str(order.get('orderId'))[:64]}")
    lines = order.get("orderLine")
    if not isinstance(lines, list) or not any(
        isinstance(line, dict) and line.get("orderLineId") == order_line_id for line in lines
    ):
        return Outcome(Kind.REFUSED, f"order {order_id} has no line {order_line_id}")
    return Outcome(Kind.CONFIRMED, "confirmed", order)


class OrderApi:
    """The query-order API at `urls` (the configured one, or the default and its fallback),
    called with `key`, each call within `timeout` seconds in all."""

    def __init__(
        self,
        key: AccessKey,
        urls: list[str],
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.key = key
        self.urls = urls
        self.timeout = timeout
        self.http = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, transport=transport, trust_env=False
        )

    async def query(self, order_id: str, order_line_id: str) -> Outcome:
        """The order line, confirmed or not. The fallback domain is asked only when the first
        gave no usable answer (unavailable): a refusal is an answer."""
        outcome = Outcome(Kind.UNAVAILABLE, "no API URL")
        try:
            async with asyncio.timeout(self.timeout):
                for url in self.urls:
                    outcome = await self._ask(url.rstrip("/") + QUERY_PATH, order_id, order_line_id)
                    if outcome.kind is not Kind.UNAVAILABLE:
                        return outcome
        except TimeoutError:
            return Outcome(Kind.UNAVAILABLE, f"no answer within {self.timeout:g} s")
        return outcome

    async def _ask(self, url: str, order_id: str, order_line_id: str) -> Outcome:
        params = [("orderId", order_id), ("orderLineId", order_line_id)]
        url, headers = signed_request(self.key, url, params)  # Host as signed, sent as is
        try:
            async with self.http.stream("GET", url, headers=headers) as response:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        return Outcome(Kind.UNAVAILABLE, "answer too large")
        except httpx.HTTPError as exc:
            return Outcome(Kind.UNAVAILABLE, type(exc).__name__)
        return judge(response.status_code, body, order_id, order_line_id)

    async def close(self) -> None:
        await self.http.aclose()
