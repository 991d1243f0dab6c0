"""Signed delivery of marketplace calls: keys, sync times, and the HTTP exchange.

Every call is signed with the very `sign_body` identity verifies with (§2.1 basic, §2.2 kit),
posted to identity's production address (the kit sub-paths appended, §3.0), and accepted only as
HTTP 200 + JSON with `resultCode` `000000` (§0.3, §1.1); anything else raises a `DeliveryError`
whose message names the call and the reason.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx2 as httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from identity.marketplace.signing import Kind, sign_body
from identity.simulator.scenario import TenantSpec

SUCCESS = "000000"
IN_PROGRESS = "000004"
"""newInstance accepted while the ISV finishes provisioning; the marketplace polls queryInstance."""
MAX_USERS_PER_SYNC = 500
BASIC_PATH = "/koogallery"
KIT_PATH = "/koogallery/produceAPI/v2/{name}"
GMT8 = timezone(timedelta(hours=8))

Answer = dict[str, Any]


class DeliveryError(Exception):
    """A call that did not end in `000000`; the message says which call and why."""


class Refused(DeliveryError):
    def __init__(self, interface: str, answer: Answer) -> None:
        self.interface = interface
        self.result_code = str(answer.get("resultCode"))
        self.result_msg = str(answer.get("resultMsg", ""))
        super().__init__(f"identity refused {interface}: {self.result_code} {self.result_msg}")


class Unreachable(DeliveryError):
    pass


@dataclass(frozen=True)
class Keys:
    """The seller's keys (§0.3, §2.7). Each may be missing until a call needs it."""

    basic: str | None
    kit: str | None
    public_key: rsa.RSAPublicKey | None = None

    @classmethod
    def from_private_key_pem(cls, basic: str | None, kit: str | None, pem: bytes) -> Keys:
        """KooGallery holds only the public key; derive it from the seller's private PEM."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DeliveryError("the seller private key is not an RSA key")
        return cls(basic, kit, key.public_key())

    def access_key(self, kind: Kind) -> str:
        key = self.basic if kind is Kind.BASIC else self.kit
        if not key:
            env = f"IDENTITY_MARKETPLACE_{kind.upper()}_KEY"
            raise DeliveryError(f"no {kind} access key: set {env} or pass --{kind}-key")
        return key


class SyncClock:
    """`yyyyMMddHHmmssSSS` in GMT+8 (§3.0), strictly increasing within the process, so that a
    later event is never taken for a stale one by identity's ordering guard (§7)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last_ms = -1
        self._lock = threading.Lock()

    def now(self) -> str:
        with self._lock:
            self._last_ms = max(int(self._clock() * 1000), self._last_ms + 1)
            moment = datetime.fromtimestamp(self._last_ms / 1000, UTC).astimezone(GMT8)
        return moment.strftime("%Y%m%d%H%M%S") + f"{self._last_ms % 1000:03d}"


SYNC_CLOCK = SyncClock()


class KooGallery:
    """Signs and posts calls through `client`, whose base URL is identity's production address
    (the kit sub-paths are appended, §3.0). `report` gets one line per delivered call."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        keys: Keys,
        *,
        app_id: str,
        auth_centre: str,
        report: Callable[[str], None] | None = None,
        sync_clock: SyncClock = SYNC_CLOCK,
    ) -> None:
        self.client = client
        self.keys = keys
        self.app_id = app_id
        self.auth_centre = auth_centre.rstrip("/")
        self.report = report
        self.sync_clock = sync_clock
        self._instances: dict[tuple[str, str], str] = {}

    def sync_time(self) -> str:
        return self.sync_clock.now()

    async def basic(self, body: dict[str, Any], *, quiet: bool = False) -> Answer:
        """POST {identity}/koogallery?signature&timestamp&nonce (§2.1, §4.0). `quiet`: not
        reported (a look-up the operator did not ask for)."""
        raw, signature, timestamp, nonce = self._sign(Kind.BASIC, body)
        params = {"signature": signature, "timestamp": timestamp, "nonce": nonce}
        activity = str(body["activity"])
        return await self._post(activity, BASIC_PATH, raw, params=params, quiet=quiet)

    async def kit(self, name: str, body: dict[str, Any]) -> Answer:
        """POST {identity}/koogallery/produceAPI/v2/{name} with x-sign headers (§2.2, §3.0)."""
        raw, signature, timestamp, nonce = self._sign(Kind.KIT, body)
        headers = {"x-sign": signature, "x-timestamp": timestamp, "x-nonce": nonce}
        return await self._post(name, KIT_PATH.format(name=name), raw, headers=headers)

    def _sign(self, kind: Kind, body: dict[str, Any]) -> tuple[bytes, str, str, str]:
        """Compact UTF-8 JSON, as Jackson writes it; returns (raw, signature, timestamp, nonce)."""
        signed = sign_call(kind, self.keys.access_key(kind), body)
        return signed.raw, signed.signature, signed.timestamp, signed.nonce

    async def _post(
        self,
        interface: str,
        path: str,
        raw: bytes,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        quiet: bool = False,
    ) -> Answer:
        try:
            response = await self.client.post(
                path,
                content=raw,
                params=params,
                headers={"content-type": "application/json", **(headers or {})},
            )
        except httpx.HTTPError as exc:
            where = str(self.client.base_url).rstrip("/") + path
            raise Unreachable(f"{interface}: identity is unreachable at {where}: {exc!r}") from exc
        answer = read_answer(interface, response)
        if self.report is not None and not quiet:
            self.report(report_line(interface, raw, answer))
        return self._checked(interface, answer)

    def _checked(self, interface: str, answer: Answer) -> Answer:
        """The answer, when it is a success (or newInstance's "in progress", §4.2)."""
        code = answer.get("resultCode")
        in_progress = interface == "newInstance" and code == IN_PROGRESS
        if code != SUCCESS and not in_progress:
            raise Refused(interface, answer)
        return answer

    async def instance_id(self, tenant: TenantSpec, business_id: str | None = None) -> str:
        """The tenant's instanceId: newInstance is idempotent per order line (§4.2)."""
        order = tenant.order
        key = (order.order_id, order.order_line_id)
        if key not in self._instances or business_id is not None:
            answer = await self.basic(
                {
                    "activity": "newInstance",
                    "orderId": order.order_id,
                    "orderLineId": order.order_line_id,
                    "businessId": business_id or uuid.uuid4().hex,
                    "testFlag": "0",
                },
                quiet=business_id is None,  # only learning the id: the event is what was asked
            )
            self._instances[key] = str(answer["instanceId"])
        return self._instances[key]


@dataclass(frozen=True)
class SignedCall:
    """A body as sent, and what travels beside it (in the query or the headers)."""

    raw: bytes
    signature: str
    timestamp: str
    nonce: str


def encode_body(body: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as Jackson writes it, members in the order given."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def sign_call(
    kind: Kind,
    key: str,
    body: dict[str, Any] | bytes,
    *,
    timestamp: str | None = None,
) -> SignedCall:
    """A call signed as the marketplace signs it (§2.1, §2.2): a fresh nonce (64 upper-case
    hex, as the docs' examples), the current epoch milliseconds (§2.4) unless a timestamp is
    given; a body given as bytes is sent as it is (the conformance kit's oversized one)."""
    raw = body if isinstance(body, bytes) else encode_body(body)
    nonce = secrets.token_hex(32).upper()
    timestamp = str(int(time.time() * 1000)) if timestamp is None else timestamp
    return SignedCall(raw, sign_body(kind, key, nonce, timestamp, raw), timestamp, nonce)


def read_answer(interface: str, response: httpx.Response) -> Answer:
    """HTTP 200 + JSON with resultCode is the only answer the marketplace accepts (§0.3)."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200 or not isinstance(answer, dict) or "resultCode" not in answer:
        raise DeliveryError(
            f"{interface}: identity answered HTTP {response.status_code}, not a KooGallery "
            f"answer: {response.text[:200]!r}"
        )
    return answer


def report_line(interface: str, raw: bytes, answer: Answer) -> str:
    body = json.loads(raw)
    subject = body.get("tenantId") or body.get("instanceId") or body.get("orderId") or ""
    extra = f" instanceId={answer['instanceId']}" if "instanceId" in answer else ""
    code, message = answer.get("resultCode"), answer.get("resultMsg", "")
    return f"{interface:<22} {subject:<20} {code} {message}{extra}"
