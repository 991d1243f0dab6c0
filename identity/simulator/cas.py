"""The auth centre's CAS login, as the marketplace's enterprise workbench uses it (CAS 3.0).

The workbench signs a member in to an app with a CAS service ticket: the browser goes to the
auth centre's CAS login with the app's `service` URL, comes back to that URL with
`ticket=ST-…`, and the app validates the ticket server to server (contract §5.3, "a CAS variant
exists for the workbench"). Paths:

- `GET /api/v1/cas/p3/login?service=URL` (CAS 3.0 §2.1): `service` is required and must be one
  of identity's CAS callbacks, `{identity}/sso/cas/{appId}` for the scenario's app or one of its
  other apps: that URL exactly, or followed by `?query` or by `/more/path` (no `.`/`..`
  segment), in printable ASCII, without a fragment. Anything else is the bilingual error page
  (400), never a redirect. A browser with an SSO session (`sim_sso`, the OAuth login's too) is
  sent at once (302) to `service` with `ticket=ST-…` appended (`&` when `service` has a `?`);
  any other browser gets the login form, the service in a hidden field.
- `POST /api/v1/cas/p3/login`: the form's target. The same check as the OAuth login
  (`account@tenantCode` and password; wrong: the form again, 401), then the same SSO session
  and cookie, and a 302 to `service` with a new ticket. Any member of any tenant of the
  scenario is accepted (every tenant uses the scenario's app; the scenario does not say which
  tenants use its other apps), and, as in the OAuth login, `enable` and `authorised` are not
  looked at: identity must refuse those members itself. A member whose password must change
  is asked for a new one first (`console.first_sign_in`), as in the OAuth login.
- `GET /api/v1/cas/p3/serviceValidate?service=…&ticket=…&format=JSON|XML` (§2.5): always HTTP
  200 with `Cache-Control: no-store`. JSON when `format` is absent or empty, as the workbench
  answers (CAS 3.0 itself defaults to XML); `format` is case-insensitive. Success:

      {"serviceResponse": {"authenticationSuccess": {"user": "<userName>", "attributes": {
          "userName": "<userName>", "tenant": "<tenantId>", "role": "admin|user",
          "organizationCode": "<orgCode>", "name": "<name>"}}}}

      <cas:serviceResponse xmlns:cas="http://www.yale.edu/tp/cas"><cas:authenticationSuccess>
        <cas:user>…</cas:user><cas:attributes><cas:userName>…</cas:userName><cas:tenant>…
        </cas:tenant><cas:role>…</cas:role><cas:organizationCode>…</cas:organizationCode>
        <cas:name>…</cas:name></cas:attributes></cas:authenticationSuccess></cas:serviceResponse>

  (the XML without whitespace between elements, `Content-Type: application/xml;
  charset=utf-8`). Failure: `{"serviceResponse": {"authenticationFailure": {"code": …,
  "description": …}}}`, or `<cas:authenticationFailure code="…">description
  </cas:authenticationFailure>` in the same envelope. Codes: `INVALID_REQUEST` (service or
  ticket missing, or a `format` other than JSON or XML, answered in JSON), `INVALID_TICKET`
  (unknown, used or expired; anything not issued here, such as a ticket not starting with
  `ST-`), `INVALID_SERVICE` (not the service the ticket was issued for).

Service tickets (§3.1): `ST-` and 28 url-safe characters (31 in all: CAS 3.0 requires apps to
accept 32). Each is bound to the exact service string it was issued for and names a
(tenantId, userName); it is valid for five minutes by the issuer's clock and burnt by the
first validation that presents it with a service, whatever the outcome (an `INVALID_REQUEST`
does not burn it). Like the rest of the auth centre's state, tickets live in process memory.

Not simulated (the parameters are ignored): `renew`, `gateway`, `method`, proxy tickets
(`pgtUrl`, `/proxyValidate`), CAS 1.0 `/validate`, `/samlValidate` and CAS logout.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from identity.simulator import pages
from identity.simulator.authcentre import (
    WRONG_PASSWORD,
    Centre,
    check_password,
    find_member,
    signed_in,
    start_sso,
)
from identity.simulator.console import first_sign_in
from identity.simulator.scenario import MemberSpec, TenantSpec

LOGIN_PATH = "/api/v1/cas/p3/login"
SERVICE_VALIDATE_PATH = "/api/v1/cas/p3/serviceValidate"
TICKET_SECONDS = 300
CAS_NS = "http://www.yale.edu/tp/cas"

ET.register_namespace("cas", CAS_NS)
router = APIRouter()


class CasFailure(Exception):
    """An `authenticationFailure` of serviceValidate: a CAS 3.0 error code and a description."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code, self.description = code, description


@dataclass(frozen=True)
class _Ticket:
    tenant_id: str
    user_name: str
    service: str
    expires_at: float


def cas_callbacks(callback_base: str, app_ids: Iterable[str]) -> tuple[str, ...]:
    """identity's CAS callback of each app, built as `Centre.callback` is."""
    return tuple(f"{callback_base.rstrip('/')}/sso/cas/{app_id}" for app_id in app_ids)


def _under(service: str, callback: str) -> bool:
    if service == callback or service.startswith(callback + "?"):
        return True
    if not service.startswith(callback + "/"):
        return False
    path = service[len(callback) :].partition("?")[0]
    return all(unquote(segment) not in (".", "..") for segment in path.split("/"))


class ServiceTickets:
    """The CAS side of the auth centre: the services it accepts and its service tickets."""

    def __init__(
        self,
        callbacks: Iterable[str],
        clock: Callable[[], float],
        seconds: float = TICKET_SECONDS,
    ) -> None:
        self.callbacks = tuple(callbacks)
        self.clock = clock
        self.seconds = seconds
        self._tickets: dict[str, _Ticket] = {}

    def accepts(self, service: str) -> bool:
        """One of identity's CAS callbacks, as it can go into a Location header unchanged."""
        if not service or "#" in service or any(not "!" <= c <= "~" for c in service):
            return False
        return any(_under(service, callback) for callback in self.callbacks)

    def issue(self, tenant_id: str, user_name: str, service: str) -> str:
        now = self.clock()
        self._tickets = {t: v for t, v in self._tickets.items() if v.expires_at > now}
        ticket = "ST-" + secrets.token_urlsafe(21)
        self._tickets[ticket] = _Ticket(tenant_id, user_name, service, now + self.seconds)
        return ticket

    def redeem(self, ticket: str, service: str) -> tuple[str, str]:
        """The (tenantId, userName) a ticket names; it is burnt whatever the outcome."""
        issued = self._tickets.pop(ticket, None)
        if issued is None or issued.expires_at <= self.clock():
            raise CasFailure("INVALID_TICKET", "Ticket not recognized")
        if issued.service != service:
            raise CasFailure("INVALID_SERVICE", "Ticket was not issued for this service")
        return issued.tenant_id, issued.user_name


def install(app: FastAPI, centre: Centre, callback_base: str) -> None:
    """Serve CAS on the auth centre `app`: the tickets on `app.state.cas`, then the routes."""
    app_ids = [centre.scenario.app_id, *centre.scenario.other_app_ids]
    app.state.cas = ServiceTickets(cas_callbacks(callback_base, app_ids), centre.issuer.clock)
    app.include_router(router)


def _state(request: Request) -> tuple[Centre, ServiceTickets]:
    return request.app.state.centre, request.app.state.cas


# --- login -----------------------------------------------------------------------------------


def _refused(tickets: ServiceTickets) -> HTMLResponse:
    title = "无效的服务地址 / Invalid service"
    message = f"service must be one of identity's CAS callbacks: {', '.join(tickets.callbacks)}"
    return HTMLResponse(pages.error_page(title, message), status_code=400)


def _form(service: str, status: int = 200, **shown: str) -> HTMLResponse:
    page = pages.login_page(action=LOGIN_PATH, hidden={"service": service}, **shown)
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


def _back_to(
    tickets: ServiceTickets, service: str, tenant: TenantSpec, member: MemberSpec
) -> Response:
    ticket = tickets.issue(tenant.tenant_id, member.user_name, service)
    joiner = "&" if "?" in service else "?"
    location = f"{service}{joiner}{urlencode({'ticket': ticket})}"
    return Response(status_code=302, headers={"Location": location, "Cache-Control": "no-store"})


@router.get(LOGIN_PATH)
async def login_page(request: Request) -> Response:
    centre, tickets = _state(request)
    service = request.query_params.get("service", "")
    if not tickets.accepts(service):
        return _refused(tickets)
    held = signed_in(centre, request)
    return _back_to(tickets, service, *held) if held else _form(service)


@router.post(LOGIN_PATH)
async def login(request: Request) -> Response:
    centre, tickets = _state(request)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    service = form.get("service", "")
    if not tickets.accepts(service):
        return _refused(tickets)
    username = form.get("username", "")
    found = check_password(centre.scenario, username, form.get("password", ""))
    if found is None:
        return _form(service, 401, username=username, error=WRONG_PASSWORD)

    def finish(request: Request, tenant: TenantSpec, member: MemberSpec) -> Response:
        response = _back_to(tickets, service, tenant, member)
        start_sso(centre, request, response, tenant, member)
        return response

    tenant, member = found
    if member.must_change_password:
        return first_sign_in.ask(request, tenant, member, form.get("password", ""), finish)
    return finish(request, tenant, member)


# --- serviceValidate -------------------------------------------------------------------------


def _cas(name: str) -> str:
    return f"{{{CAS_NS}}}{name}"


def _xml(answer: dict[str, Any]) -> str:
    """The JSON answer's XML form (CAS 3.0 appendix A), escaped by ElementTree."""
    root = ET.Element(_cas("serviceResponse"))
    if "authenticationFailure" in answer:
        failure = answer["authenticationFailure"]
        element = ET.SubElement(root, _cas("authenticationFailure"), code=failure["code"])
        element.text = failure["description"]
    else:
        success = answer["authenticationSuccess"]
        element = ET.SubElement(root, _cas("authenticationSuccess"))
        ET.SubElement(element, _cas("user")).text = success["user"]
        attributes = ET.SubElement(element, _cas("attributes"))
        for name, value in success["attributes"].items():
            ET.SubElement(attributes, _cas(name)).text = value
    return ET.tostring(root, encoding="unicode")


def _validate(centre: Centre, tickets: ServiceTickets, service: str, ticket: str) -> dict[str, Any]:
    try:
        if not service or not ticket:
            raise CasFailure(
                "INVALID_REQUEST", "'service' and 'ticket' parameters are both required"
            )
        found = find_member(centre.scenario, *tickets.redeem(ticket, service))
        if found is None:  # deleted in the console since the ticket was issued
            raise CasFailure("INVALID_TICKET", "The ticket's account no longer exists")
    except CasFailure as exc:
        return {"authenticationFailure": {"code": exc.code, "description": exc.description}}
    tenant, member = found
    attributes = {
        "userName": member.user_name,
        "tenant": tenant.tenant_id,
        "role": member.role,
        "organizationCode": member.org_code,
        "name": member.name,
    }
    return {"authenticationSuccess": {"user": member.user_name, "attributes": attributes}}


@router.get(SERVICE_VALIDATE_PATH)
async def service_validate(request: Request) -> Response:
    centre, tickets = _state(request)
    params = request.query_params
    headers = {"Cache-Control": "no-store"}
    answer_in = (params.get("format") or "JSON").upper()
    if answer_in not in ("JSON", "XML"):
        failure = {"code": "INVALID_REQUEST", "description": "format must be JSON or XML"}
        return JSONResponse({"serviceResponse": {"authenticationFailure": failure}}, 200, headers)
    answer = _validate(centre, tickets, params.get("service", ""), params.get("ticket", ""))
    if answer_in == "XML":
        return Response(_xml(answer), 200, headers, media_type="application/xml; charset=utf-8")
    return JSONResponse({"serviceResponse": answer}, 200, headers)
