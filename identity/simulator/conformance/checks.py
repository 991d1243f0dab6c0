"""What an answer must be, as the marketplace judges it (§0.3, §1): each check names the first
thing wrong, or None.

Every answer is first held to the transport rules (HTTP 200, `application/json`, a JSON object
whose `resultCode` is six digits and `resultMsg`, if any, a string of at most 255 characters)
and to the time limit; a case then adds its own checks (the code, the instanceId, the listing).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from identity.marketplace import v1
from identity.simulator.conformance.exchange import Reply

Check = Callable[[Reply], str | None]

SUCCESS = "000000"
AUTHENTICATION = "000001"
INVALID = "000002"
NO_INSTANCE = "000003"
IN_PROGRESS = "000004"
_CODE = re.compile(r"\d{6}")


def answer_problem(reply: Reply, time_limit: float) -> str | None:
    """The transport rules and the time limit (§0.3, §1.1)."""
    if reply.error is not None:
        return reply.error
    if reply.seconds > time_limit:
        return f"answered after {reply.seconds:.1f} s, over the {time_limit:g} s limit"
    if reply.status != 200:
        return f"HTTP {reply.status}, not 200"
    kind = reply.headers.get("content-type", "")
    if kind.split(";")[0].strip().lower() != "application/json":
        return f"Content-Type {kind!r}, not application/json"
    document = reply.document()
    if document is None:
        return "the body is not a JSON object"
    if not isinstance(document.get("resultCode"), str) or not _CODE.fullmatch(
        document["resultCode"]
    ):
        return "resultCode is missing or not six digits"
    message = document.get("resultMsg")
    if message is not None and (not isinstance(message, str) or len(message) > 255):
        return "resultMsg is not a string of at most 255 characters"
    return None


def code_is(*codes: str) -> Check:
    def check(reply: Reply) -> str | None:
        return None if reply.code in codes else f"expected {' or '.join(codes)}"

    return check


accepted = code_is(SUCCESS)


def refused(reply: Reply) -> str | None:
    """Anything but success (and, for newInstance, but "in progress")."""
    return "accepted, expected a refusal" if reply.code in (SUCCESS, IN_PROGRESS) else None


def instance_id(reply: Reply) -> str | None:
    """newInstance's `instanceId`: a string of 1-64 characters (§1.1, §4.2)."""
    value = reply.value("instanceId")
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        return "no instanceId of 1-64 characters"
    return None


def same_instance(expected: str | None) -> Check:
    def check(reply: Reply) -> str | None:
        got = reply.value("instanceId")
        return None if got == expected else f"instanceId {got!r}, not the first one {expected!r}"

    return check


def lists(*ids: str | None) -> Check:
    """queryInstance's `info` holds each id; an `appInfo`, when given, has a `frontEndUrl` of
    at most 512 characters (§4.3)."""

    def check(reply: Reply) -> str | None:
        info = reply.value("info")
        if not isinstance(info, list):
            return "no info list"
        listed = {i.get("instanceId"): i for i in info if isinstance(i, dict)}
        for wanted in ids:
            if wanted not in listed:
                return f"info does not list {wanted!r}"
            app_info = listed[wanted].get("appInfo")
            if app_info is None:
                continue
            url = app_info.get("frontEndUrl") if isinstance(app_info, dict) else None
            if not isinstance(url, str) or not 1 <= len(url) <= 512:
                return f"{wanted!r}: appInfo without a frontEndUrl of 1-512 characters"
        return None

    return check


def body_signed(key: str) -> Check:
    """V1: the `Body-Sign` header, named exactly so, is the key's over the exact bytes (§2.5)."""

    def check(reply: Reply) -> str | None:
        values = [value for name, value in reply.headers.raw if name == b"Body-Sign"]
        if not values:
            return "no Body-Sign header (the name is case-sensitive)"
        if values[0] != v1.body_sign(key, reply.content):
            return "Body-Sign is not the V1 key's signature over the answer's bytes"
        return None

    return check


def refused_or_http(time_limit: float, *statuses: int) -> Check:
    """Refused as a KooGallery answer, or by one of the HTTP `statuses` (413 from a proxy in
    front of the endpoint for a body too large; 404 or 405 from a framework for a path it does
    not serve); never accepted, never a crash, in time. For `Case.expect(..., plain=True)`."""

    def check(reply: Reply) -> str | None:
        if reply.status in statuses and reply.error is None and reply.seconds <= time_limit:
            return None
        return answer_problem(reply, time_limit) or refused(reply)

    return check
