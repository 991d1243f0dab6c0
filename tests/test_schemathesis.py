"""schemathesis against the OpenAPI document, in-process: every operation `/openapi.json`
publishes (`/sso/session`, the admin API) and the OpenID Provider's endpoints
(tests/helpers/provider_openapi.py), each with `EXAMPLES` generated requests, derandomized so a
CI run is the same run every time. Every answer must be below 500 and conform to the document:
a documented status, a body matching its schema, the declared content type.

The requests come from a signed-in admin of acme (a local password, `/login`) with the session's
CSRF token, and the provider's from a registered confidential client with its credentials, so
generated values reach past authentication. Some cases are schemathesis' negative ones
(values the document does not allow: a wrong type, a missing required field, a limit out of
range), which must be refused with a documented status too.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi import checks

from identity.app import create_app
from identity.db import Database
from identity.provider import clients
from identity.provider import routes as provider_routes
from identity.settings import Settings
from tests.helpers.admin_rows import (
    APP,
    CODE,
    OWNER_PASSWORD,
    Person,
    add_people,
    add_tenant,
    file_notifier,
    give_password,
)
from tests.helpers.provider_openapi import PATHS as PROVIDER_PATHS
from tests.helpers.simulator_world import login_form

EXAMPLES = 30
BASE = "https://identity.example.com"
OPERATIONS = [
    ("GET", "/sso/session"),
    ("GET", "/api/admin/members"),
    ("GET", "/api/admin/members/{user_name}"),
    ("POST", "/api/admin/members/{user_name}/end-sessions"),
    ("GET", "/api/admin/departments"),
    ("GET", "/api/admin/syncs"),
    ("POST", "/api/admin/members/{user_name}/password-resets"),
    ("POST", "/api/admin/password-resets/{reset_id}/confirm"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/oauth2/jwks"),
    ("POST", "/oauth2/token"),
    ("POST", "/oauth2/introspect"),
    ("POST", "/oauth2/revoke"),
    ("GET", "/oauth2/userinfo"),
]
ADMIN = "boss"
REDIRECT = "https://app.example.com/callback"
CHECKS = [
    not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
"""No 5xx, and the answer is one the document describes. Not `positive_data_acceptance`: a value
the schema allows may still be refused (an unknown member, a control character, a grant the client
may not use), and that refusal is a documented 4xx."""
STATUSES: dict[str, list[int]] = {}
"""The statuses answered, per operation (printed with `-s`: the run's counts)."""


class Signed:
    """The in-process app, a requests session signed in as acme's admin, and a client's Basic
    credentials."""

    def __init__(self, app: Any, http: requests.Session, csrf: str, basic: str) -> None:
        self.app, self.http, self.csrf, self.basic = app, http, csrf, basic


@pytest.fixture
async def world(settings: Settings, db: Database) -> Database:
    await add_tenant(db)
    await add_people(
        db,
        Person(ADMIN, role="admin", email="boss@example.com"),
        Person("bob", mobile="13800000000"),
        Person("carol"),
    )
    await give_password(db, ADMIN)
    return db


@pytest.fixture
async def client_credentials(world: Database) -> str:
    registration = clients.Registration(APP, "App", [REDIRECT], [], None, None, public=False)
    async with world.transaction() as session:
        added = await clients.add(session, registration)
        client_id, secret = added.client_id, added.secret
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
def signed(settings: Settings, client_credentials: str, tmp_path: Path) -> Iterator[Signed]:
    app = create_app(settings)
    app.state.notifier = file_notifier(tmp_path / "outbox.jsonl")  # reset codes are sent
    with asgi.get_client(app) as http:
        http.base_url = BASE
        page = http.get("/login")
        fields = {**login_form(page.text).inputs, "account": f"{ADMIN}@{CODE}"}
        signed_in = http.post("/login", data=fields | {"password": OWNER_PASSWORD})
        assert signed_in.status_code < 400, signed_in.text
        session = http.get("/sso/session")
        assert session.status_code == 200, session.text
        yield Signed(app, http, session.json()["csrfToken"], client_credentials)
    asgi.shutdown_lifespans()


def document(app: Any) -> dict[str, Any]:
    """The app's published document with the provider's operations beside them."""
    published = app.openapi()
    return published | {"paths": published["paths"] | PROVIDER_PATHS}


def operations(paths: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in paths.items() for method in item}


def test_every_operation_is_exercised_and_every_described_route_exists(signed: Signed) -> None:
    assert operations(document(signed.app)["paths"]) == set(OPERATIONS)
    routes = [*provider_routes.router.routes, *provider_routes.api]
    provider = {(method, r.path) for r in routes for method in getattr(r, "methods", ())}
    assert operations(PROVIDER_PATHS) <= provider


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms(signed: Signed, method: str, path: str) -> None:
    schema = schemathesis.openapi.from_dict(document(signed.app))
    schema.app = signed.app
    operation = schema[path][method]
    headers = {"x-csrf-token": signed.csrf}
    cases = st.one_of([operation.as_strategy(mode) for mode in GenerationMode])
    if path.startswith("/oauth2/") and path != "/oauth2/userinfo":
        headers["authorization"] = signed.basic

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, member=st.sampled_from([None, "bob", "carol"]))
    def run(case: schemathesis.Case, member: str | None) -> None:
        named = case.path_parameters or {}
        if "user_name" in named and member:
            named["user_name"] = member  # a member of acme, not only names of no one
        if named.get("user_name") == ADMIN:
            return  # ending the admin's own sessions would sign the run out
        answer = case.call_and_validate(
            base_url=BASE, session=signed.http, headers=headers, checks=CHECKS
        )
        STATUSES.setdefault(f"{method} {path}", []).append(answer.status_code)

    run()
    sent = STATUSES.get(f"{method} {path}", [])
    assert sent, "no request was sent"
    print(f"{method} {path}: {len(sent)} requests, statuses {sorted(set(sent))}")
