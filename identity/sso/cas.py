"""Sign-in with a CAS ticket, as the marketplace's enterprise workbench does (contract §5.3).

The workbench sends the browser to the tenant's auth centre's CAS login with identity's CAS
callback as the `service`; the auth centre sends it back with a service ticket:

    GET {IDENTITY_BASE_URL}/sso/cas/{appId}?tenant={tenantId}&ticket=ST-…

identity validates the ticket at the auth centre (CAS 3.0 §2.5),
`GET {domainName}/api/v1/cas/p3/serviceValidate?service=…&ticket=…&format=JSON`, where
`service` is the callback exactly as it received the ticket, without the `ticket` parameter.
The answer (JSON, or CAS's XML) names the member and their attributes (`userName`, `tenant`,
`role`, `organizationCode`, `name`), each a single value or a list of one. From there the member
goes the way of a unified login (Flow A, which has no `state` either): the same admission, a
browser signed in as someone else asked before it switches, the same session, refusals, logout
and revocation. The auth centre keeps a ticket single-use; the session holds no upstream token
(a CAS ticket carries none), so nothing is renewed: the session lives by its own idle and
absolute limits.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from identity.sessions import Seen
from identity.sso import admission, switching
from identity.sso.refusals import UPSTREAM_REASONS, Refusal
from identity.sso.upstream import UpstreamError

if TYPE_CHECKING:
    from identity.sso.service import Completed, Sso
    from identity.sso.switching import Asked

VALIDATE_PATH = "/api/v1/cas/p3/serviceValidate"
CAS = "{http://www.yale.edu/tp/cas}"
ATTRIBUTES = ("userName", "tenant", "role", "organizationCode", "name")


def service_url(base_url: str, app_id: str, raw_query: str) -> str:
    """The service a ticket was issued for: the callback as it was called, its query kept
    byte for byte, without `ticket` (CAS 3.0 §2.2.1: the service as the client sent it)."""
    kept = [
        part
        for part in raw_query.split("&")
        if part and unquote_plus(part.split("=", 1)[0]) != "ticket"
    ]
    query = "&".join(kept)
    return f"{base_url.rstrip('/')}/sso/cas/{app_id}" + (f"?{query}" if query else "")


def _single(value: Any) -> str | None:
    """An attribute given as a value or as a list of one value."""
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    return value if isinstance(value, str) and value else None


def parse(status: int, raw: bytes) -> dict[str, Any]:
    """The member a serviceValidate answer names, as userinfo would (`userName`, `tenant`, …);
    UpstreamError `invalid_grant` for a refused ticket, `bad_response` for anything else."""
    if status >= 500:
        raise UpstreamError("server_error", f"HTTP {status}")
    if status != 200:
        raise UpstreamError("bad_response", f"HTTP {status}")
    text = raw.lstrip()
    success, failure = _xml(text) if text.startswith(b"<") else _json(text)
    if failure is not None:
        raise UpstreamError("invalid_grant", failure[:200])
    if success is None:
        raise UpstreamError("bad_response", "no authenticationSuccess")
    info = {name: _single(success.get(name)) for name in ATTRIBUTES}
    info["userName"] = info["userName"] or _single(success.get("user"))
    if not info["userName"]:
        raise UpstreamError("bad_response", "the ticket's answer names no user")
    return info


Found = tuple[dict[str, Any] | None, str | None]
"""(the user and attributes of a success, the code and description of a failure)."""


def _json(text: bytes) -> Found:
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise UpstreamError("bad_response", "neither JSON nor XML") from None
    answer = body.get("serviceResponse") if isinstance(body, dict) else None
    if not isinstance(answer, dict):
        return None, None
    failure = answer.get("authenticationFailure")
    if isinstance(failure, dict):
        return None, f"{failure.get('code')}: {failure.get('description')}"
    success = answer.get("authenticationSuccess")
    if not isinstance(success, dict):
        return None, None
    attributes = success.get("attributes")
    found = dict(attributes) if isinstance(attributes, dict) else {}
    return found | {"user": success.get("user")}, None


def _xml(text: bytes) -> Found:
    """CAS 3.0's XML: `cas:user`, and `cas:attributes` whose repeated elements are a list."""
    try:
        root = ElementTree.fromstring(text)
    except (ElementTree.ParseError, DefusedXmlException):
        raise UpstreamError("bad_response", "XML that does not parse") from None
    failure = root.find(f"{CAS}authenticationFailure")
    if failure is not None:
        return None, f"{failure.get('code')}: {(failure.text or '').strip()}"
    success = root.find(f"{CAS}authenticationSuccess")
    if success is None:
        return None, None
    found: dict[str, Any] = {"user": (success.findtext(f"{CAS}user") or "").strip()}
    for element in success.find(f"{CAS}attributes") or []:
        name = str(element.tag).removeprefix(CAS)
        found.setdefault(name, []).append((element.text or "").strip())
    return found, None


async def complete(
    sso: Sso,
    app_id: str,
    *,
    ticket: str | None,
    tenant: str | None,
    raw_query: str,
    old_raw_session_id: str | None,
    seen: Seen | None = None,
) -> Completed | Asked:
    """The CAS callback: the ticket validated at the tenant's auth centre, then the member
    admitted and signed in as after a unified login. `raw_query`: the callback's query string
    as it arrived, of which the ticket was issued for all but the ticket."""
    service = service_url(sso.base_url, app_id, raw_query)
    if not tenant or not ticket:
        raise Refusal("bad_request", "CAS callback without tenant or ticket")
    try:
        client = await admission.read_client(sso.db, sso.cipher, tenant, app_id)
        sso.take_tenant_turn(tenant)
        try:
            params = {"service": service, "ticket": ticket, "format": "JSON"}
            info = await sso.auth_centre.get("cas", client.domain + VALIDATE_PATH, parse, params)
        except UpstreamError as exc:
            sso.metrics.sso_upstream_errors.labels("cas", exc.kind).inc()
            reason = UPSTREAM_REASONS.get(exc.kind, "upstream_error")
            raise Refusal(reason, f"cas: {exc.kind} {exc.detail}".strip(), exc.retry_after) from exc
        if info.get("tenant") != tenant:
            raise Refusal("tenant_mismatch", "the ticket's tenant differs from the callback's")
        pending = switching.pending_login(tenant, app_id, None, info, sso.post_login_url)
        if asked := await switching.ask_first(sso, old_raw_session_id, pending):
            return asked
        raw_id = await sso.open_verified(app_id, tenant, None, info, old_raw_session_id, seen=seen)
    except Refusal as refusal:
        refusal.tenant_id, refusal.app_id = tenant, app_id
        raise
    return await sso.landed(raw_id, app_id, tenant, info["userName"], sso.post_login_url)
