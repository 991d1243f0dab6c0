"""The marketplace's V1 callbacks, for an ISV endpoint that still takes them (`--v1`).

`V1KooGallery` sends what `KooGallery` sends, the way V1 did (contract §0.2, §2.5, §2.6, §3.6,
§4.8): a basic call as a `GET` of the production address with every field in the query, its
V1 activity name (`expireInstance` for a freeze, `upgrade`), no order line, `timeStamp` (UTC
`yyyyMMddHHmmssSSS`) and `authToken`; a kit call as a `POST` to `/produceAPI/{name}` with the
`authToken` header and V1's shapes (authSync's `userList` a string of JSON with the
`extension` object, allOrgSync's `orgInfo` a string with `name`). Each answer must carry a
`Body-Sign` that is the key's over its exact bytes, as the marketplace checks it; V1 had no
unfreeze, so one is refused here before it is sent.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx

from identity.marketplace import v1
from identity.simulator.wire import (
    Answer,
    DeliveryError,
    KooGallery,
    Unreachable,
    read_answer,
    report_line,
)

V1_KIT_PATH = "/koogallery/produceAPI/{name}"
_NAMES = {"updateInstanceStatus": "expireInstance", "upgradeInstance": "upgrade"}
_EXTENSION = ("entryDate", "employeeType", "workPlace")


class _UtcClock:
    """V1's `timeStamp`: UTC, to the millisecond, strictly increasing in the process."""

    def __init__(self) -> None:
        self._last_ms = -1
        self._lock = threading.Lock()

    def now(self) -> str:
        with self._lock:
            self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        moment = datetime.fromtimestamp(self._last_ms / 1000, UTC)
        return moment.strftime("%Y%m%d%H%M%S") + f"{self._last_ms % 1000:03d}"


_CLOCK = _UtcClock()


def v1_basic(body: dict[str, Any]) -> dict[str, str]:
    """A V2 basic body as V1's query parameters (their values all text)."""
    if body.get("activity") == "updateInstanceStatus" and body.get("status") != "FREEZE":
        raise DeliveryError("V1 has no unfreeze: send it as V2")
    params = {
        name: str(value)
        for name, value in body.items()
        if name not in ("orderLineId", "status", "scene") and value is not None
    }
    params["activity"] = _NAMES.get(str(body["activity"]), str(body["activity"]))
    if body.get("scene") == "TRIAL_TO_FORMAL":
        params["trialToFormal"] = "1"
    return params


def v1_kit(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """A V2 kit body in V1's shapes."""
    shaped = dict(body)
    if name == "authSync":
        users = []
        for user in body.get("userList", []):
            flat = {k: v for k, v in user.items() if k not in _EXTENSION}
            extension = {k: user[k] for k in _EXTENSION if k in user}
            users.append({**flat, "extension": extension} if extension else flat)
        shaped["userList"] = json.dumps(users, ensure_ascii=False)
    if name == "allOrgSync":
        orgs = [
            {"orgCode": o["orgCode"], "name": o.get("orgName", ""), "parentCode": o["parentCode"]}
            for o in shaped.pop("orgInfoList", [])
        ]
        shaped["orgInfo"] = json.dumps(orgs, ensure_ascii=False)
    return shaped


class V1KooGallery(KooGallery):
    """`KooGallery`, sending V1 calls signed with the seller's V1 `key`."""

    def __init__(self, *args: Any, key: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key = key

    async def basic(self, body: dict[str, Any], *, quiet: bool = False) -> Answer:
        params = {**v1_basic(body), "timeStamp": _CLOCK.now()}
        text = v1.signed_text(params, skip_blank=False)
        params["authToken"] = v1.auth_token(self.key, params["timeStamp"], text)
        interface = str(body["activity"])
        response = await self._send(interface, "GET", "/koogallery", params=params)
        return self._accepted(interface, json.dumps(body).encode(), response, quiet)

    async def kit(self, name: str, body: dict[str, Any]) -> Answer:
        shaped = {**v1_kit(name, body), "timeStamp": _CLOCK.now()}
        token = v1.auth_token(
            self.key, shaped["timeStamp"], v1.signed_text(shaped, skip_blank=True)
        )
        raw = json.dumps(shaped, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"authToken": token, "content-type": "application/json"}
        path = V1_KIT_PATH.format(name=name)
        response = await self._send(name, "POST", path, content=raw, headers=headers)
        return self._accepted(name, raw, response, False)

    async def _send(self, interface: str, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return await self.client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            where = str(self.client.base_url).rstrip("/") + path
            raise Unreachable(f"{interface}: identity is unreachable at {where}: {exc!r}") from exc

    def _accepted(
        self, interface: str, raw: bytes, response: httpx.Response, quiet: bool
    ) -> Answer:
        signed = response.headers.get("body-sign", "").encode()
        if signed != v1.body_sign(self.key, response.content):
            raise DeliveryError(f"{interface}: the answer's Body-Sign is missing or wrong")
        answer = read_answer(interface, response)
        if self.report is not None and not quiet:
            self.report(report_line(interface, raw, answer))
        return self._checked(interface, answer)
