"""What an operator watches: every log line of identity's process is JSON and carries its
request's `request_id` (returned as `X-Request-ID`) and, where known, the tenant and app; the
metrics dashboards and alerts name; and no secret a whole scenario used (marketplace keys,
client secrets, codes, tokens, passwords, reset codes) in a log line, a response or the
database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from identity.app import create_app
from identity.crypto import Cipher
from identity.db import Database, utcnow
from identity.models import Base, LogoutDelivery, SessionApp
from identity.observability import WorkerMetrics
from identity.provider.backchannel import deliver_due
from identity.settings import Settings
from identity.simulator import sender as events
from tests.helpers.admin_api import api, signed_in
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY
from tests.helpers.oidc_app import POST_LOGOUT, REDIRECT, App, authorize, register, tokens_for
from tests.helpers.receivers import slow_receiver
from tests.helpers.servers import METRICS_AUTH, METRICS_TOKEN, ROOT, free_port, service_env
from tests.helpers.simulator_world import ACME, APP_ID, login_form, world
from tests.helpers.sqlite_files import stored_bytes
from tests.helpers.stack import Browser, Browsers, Stack, running_stack
from tests.helpers.waiting import until_sync

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
NAMED = (
    "identity_http_requests_total",
    "identity_http_request_seconds",
    "identity_sessions_active",
    "identity_backchannel_outbox_pending",
    "identity_db_pool_in_use",
    "identity_upstream_call_seconds",
    "identity_sso_logins_total",
    "identity_marketplace_calls_total",
)


@pytest.fixture(scope="module")
def notify_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notify") / "messages.jsonl"


@pytest.fixture(scope="module")
def stack_env(notify_file: Path) -> dict[str, str]:
    """Messages (reset codes, initial passwords) go to `notify_file`."""
    return {"IDENTITY_NOTIFY_FILE": str(notify_file)}


class Responses:
    """Every response identity gave to the clients it watches, body and headers."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.seen: list[httpx.Response] = []

    def watch(self, client: httpx.AsyncClient) -> None:
        client.event_hooks = {**client.event_hooks, "response": [self._record]}

    async def _record(self, response: httpx.Response) -> None:
        if str(response.url).startswith(self.identity):
            await response.aread()
            self.seen.append(response)

    def texts(self) -> Iterator[str]:
        for response in self.seen:
            yield response.text
            yield "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())


def log_lines(output: str) -> list[dict[str, Any]]:
    """Every line identity printed, each parsed as JSON (a line that is not fails the test)."""
    lines = []
    for line in output.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
        assert isinstance(parsed, dict), line
        lines.append(parsed)
    return lines


def metrics_text(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


async def database_contents(database_url: str, db: Database) -> bytes:
    """Everything the database holds: the SQLite file and its write-ahead log as stored, or
    on PostgreSQL every row of every table as text."""
    if make_url(database_url).drivername.startswith("sqlite"):
        return stored_bytes(database_url)
    dumped: list[str] = []
    async with db.read() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                dumped.append(repr(tuple(row)))
    return "\n".join(dumped).encode()


def upstream_tokens(rows: list[Any]) -> list[str]:
    """The auth centre's access and refresh tokens identity holds, decrypted."""
    cipher = Cipher(SECRET_KEY)
    found = []
    for row in rows:
        for which, blob in (("access", row.access_token_enc), ("refresh", row.refresh_token_enc)):
            if blob:
                found.append(cipher.decrypt(blob, ("sessions", row.sid, row.app_id, which)))
    return found


def callback_codes(browser: Browser) -> list[str]:
    """The auth centre's codes the browser carried to identity's callback."""
    codes = []
    for response in browser.history:
        query = parse_qs(urlsplit(str(response.url)).query)
        if "/sso/callback/" in str(response.url) and "code" in query:
            codes.append(query["code"][0])
    return codes


async def test_a_whole_scenario_leaves_no_secret_in_logs_responses_or_the_database(
    acme: Stack, app: App, browsers: Browsers, db: Database, database_url: str,
    notify_file: Path,
) -> None:  # fmt: skip
    """Syncs, two logins through the auth centre, the provider's tokens, introspection,
    userinfo, a refresh, the app's logout, the member's logout and an admin's password reset."""
    seen = Responses(acme.identity)
    notify_file.write_text("")
    for client in (acme.client, app.http):
        seen.watch(client)
    alice, bob = browsers(acme), browsers(acme)
    for browser in (alice, bob):
        seen.watch(browser.http)
    await events.add_member(acme.sender, acme.tenant("acme"), "carol")  # one more sync
    await signed_in(acme, alice, "alice@acme", "alice-pw")

    back = await authorize(bob, app, account="bob@acme")
    issued = (await app.post("token_endpoint", grant_type="authorization_code",
                             code=back["code"], redirect_uri=REDIRECT)).json()  # fmt: skip
    assert issued.get("access_token"), issued
    for token in (issued["access_token"], issued["refresh_token"]):
        assert (await app.post("introspection_endpoint", token=token)).json()["active"]
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}
    assert (await app.http.get(app.config["userinfo_endpoint"], headers=bearer)).status_code == 200
    renewed = (await app.post("token_endpoint", grant_type="refresh_token",
                              refresh_token=issued["refresh_token"])).json()  # fmt: skip
    assert renewed.get("access_token"), renewed
    async with db.read() as session:
        held_upstream = upstream_tokens(list((await session.scalars(select(SessionApp))).all()))
    assert len(held_upstream) >= 2

    ended = await bob.http.get(
        app.config["end_session_endpoint"],
        params={"id_token_hint": renewed["id_token"], "post_logout_redirect_uri": POST_LOGOUT},
    )
    assert ended.status_code in (302, 303), ended.text
    reset = await api(alice, "POST", "/members/bob/password-resets")
    assert reset.status_code == 202, reset.text
    code = json.loads(notify_file.read_text().splitlines()[-1])["secret"]
    confirmed = await api(
        alice, "POST", f"/password-resets/{reset.json()['resetId']}/confirm", json={"code": code}
    )
    assert confirmed.status_code == 204, confirmed.text
    initial = json.loads(notify_file.read_text().splitlines()[-1])["secret"]
    page = await alice.get("/login")
    form = {**login_form(page.text).inputs, "account": "bob@acme", "password": initial}
    assert (await alice.http.post(acme.identity + "/login", data=form)).status_code == 200
    csrf = (await alice.session()).json()["csrfToken"]
    out = await alice.http.post(acme.identity + "/sso/logout", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 303, out.text
    assert (await acme.client.get("/metrics", headers=METRICS_AUTH)).status_code == 200

    held = [SECRET_KEY, BASIC_KEY, KIT_KEY, METRICS_TOKEN, ACME["clientSecret"], app.secret,
            "alice-pw", "bob-pw", code, initial, *held_upstream,
            *callback_codes(alice), *callback_codes(bob)]  # fmt: skip
    issued_here = [back["code"], *(issued[k] for k in ("access_token", "refresh_token",
                   "id_token")), renewed["access_token"], renewed["refresh_token"],
                   *(b.cookie("identity_session") or "" for b in (alice, bob))]  # fmt: skip
    assert len(held) > 12 and all(held) and all(issued_here[:-2])
    responses = list(seen.texts())
    assert len(responses) > 40
    for text in responses:
        assert not [s for s in held if s in text], text[:300]
    logs = acme.identity_output()
    assert len(log_lines(logs)) > 10
    stored = await database_contents(database_url, db)
    for secret in [*held, *(s for s in issued_here if s)]:
        assert secret not in logs, secret
        assert secret.encode() not in stored, secret


async def test_one_login_s_lines_carry_its_request_id_tenant_and_app(
    acme: Stack, browser: Browser
) -> None:
    """Each request's lines carry its id (the caller's when sane, else a new one) and the
    login's tenant and app; `/metrics` then shows the named metrics, by route template."""
    before = len(acme.identity_output().splitlines())
    callback_url = await browser.flow_b_callback("acme", "alice@acme", "alice-pw")
    callback = await browser.http.get(callback_url, headers={"X-Request-ID": "login-cb.1:a"})
    assert callback.status_code == 303, callback.text
    assert callback.headers["x-request-id"] == "login-cb.1:a"
    refused_id = await browser.http.get(
        acme.identity + "/sso/session", headers={"X-Request-ID": "not sane!"}
    )
    assert refused_id.status_code == 200
    made = refused_id.headers["x-request-id"]
    assert made != "not sane!" and REQUEST_ID.fullmatch(made)
    long_id = await browser.http.get(
        acme.identity + "/healthz", headers={"X-Request-ID": "a" * 129}
    )
    assert len(long_id.headers["x-request-id"]) == 32

    lines = log_lines("\n".join(acme.identity_output().splitlines()[before:]))
    [login] = [line for line in lines if line["event"] == "sso.login"]
    assert login["request_id"] == "login-cb.1:a"
    assert (login["tenant_id"], login["app_id"]) == (ACME["tenantId"], APP_ID)
    assert all(REQUEST_ID.fullmatch(line.get("request_id", "")) for line in lines), lines
    assert not [line for line in lines if line.get("logger", "").startswith("httpx")], lines
    assert "not sane!" not in acme.identity_output()

    scraped = (await acme.client.get("/metrics", headers=METRICS_AUTH)).text
    samples = metrics_text(scraped)
    for name in NAMED:
        present = {n for n in samples if n == name or n.startswith(name + "_")}
        assert present, f"{name} missing"
    callbacks = [
        value
        for labels, value in samples["identity_http_requests_total"]
        if labels == {"route": "/sso/callback/{app_id}", "method": "GET", "status": "303"}
    ]
    assert callbacks and callbacks[0] >= 1
    assert f"/sso/callback/{APP_ID}" not in scraped
    calls = {labels["call"] for labels, _ in samples["identity_upstream_call_seconds_count"]}
    assert {"token", "userinfo"} <= calls
    [(_, active)] = samples["identity_sessions_active"]
    assert active >= 1


def identity_serve(port: int) -> list[str]:
    """The command itself, banner and forked workers included (the other tests run its server
    through tests/helpers/servers.py, which prints no banner)."""
    return [sys.executable, "-m", "identity.cli", "serve", "--port", str(port), "--workers", "2"]


def after_the_banner(output: str) -> str:
    """What `identity serve` printed once its start-up lines were out: `identity listening on
    …` and the indented lines under it (identity/cli.py), the only lines that are not JSON."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("identity listening on ")]
    assert len(starts) == 1, output
    rest = lines[starts[0] + 1 :]
    while rest and rest[0].startswith("  "):
        rest.pop(0)
    return "\n".join(rest)


SHOW_WARNINGS = {"PYTHONWARNINGS": "default"}
"""Every warning shown once per place, deprecations included: a library's warning during the
flow is printed, and must be a JSON line too."""


async def test_after_its_banner_identity_prints_only_json_lines_through_a_login_and_logout(
    database_url: str, private_key_file: Path, db: Database
) -> None:
    """`identity serve` (two workers) and `identity worker` as an operator runs them: signed
    syncs, a member's login through the simulator into an app, the app's tokens, the member's
    logout, the back-channel logout the worker sends the app, and the server's shutdown.
    Everything either process wrote, on stdout or stderr, is a JSON object."""
    with slow_receiver() as app_logout:
        app_logout.release.set()  # the app answers at once
        async with running_stack(
            database_url, private_key_file, world(), identity_env=SHOW_WARNINGS,
            identity_argv=identity_serve,
        ) as stack:  # fmt: skip
            await stack.provision("acme")
            async with httpx.AsyncClient(timeout=30) as http:
                app = await register(stack, db, http, backchannel_logout_uri=app_logout.url)
                browser = stack.browser()
                try:
                    await tokens_for(app, browser)
                    csrf = (await browser.session()).json()["csrfToken"]
                    out = await browser.http.post(
                        stack.identity + "/sso/logout", headers={"X-CSRF-Token": csrf}
                    )
                finally:
                    await browser.close()
            assert out.status_code == 303, out.text
            env = service_env(
                database_url, secret_key=SECRET_KEY, basic_key=BASIC_KEY, kit_key=KIT_KEY,
                base_url=stack.identity, log_level="INFO",
            ) | SHOW_WARNINGS  # fmt: skip
            worker = subprocess.run(
                [sys.executable, "-m", "identity.cli", "worker", "--once"], env=env, cwd=ROOT,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
            )  # fmt: skip
            assert worker.returncode == 0, worker.stdout
            assert len(app_logout.tokens) == 1
            for server in stack.processes[0].processes:  # its shutdown's lines too
                server.terminate()
                server.wait(timeout=30)
            printed = after_the_banner(stack.identity_output())

    served = log_lines(printed)
    assert {"sso.login", "sso.logout"} <= {line["event"] for line in served}, printed
    sent = log_lines(worker.stdout)
    assert [line["delivered"] for line in sent if line["event"] == "worker.backchannel"] == [1]


def test_a_warning_is_a_json_line() -> None:
    """Python prints a warning (a library's deprecation, say) as plain lines on stderr; with
    the service's logging it is a JSON line like any other."""
    code = (
        "import warnings\n"
        "from identity.observability import configure_logging\n"
        "configure_logging('INFO')\n"
        "warnings.warn('a library would rather be called otherwise', DeprecationWarning)\n"
    )
    env = {**os.environ, **SHOW_WARNINGS, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    [line] = log_lines(done.stdout)
    assert line["logger"] == "py.warnings" and line["level"] == "warning"
    assert "DeprecationWarning: a library would rather be called otherwise" in line["event"]


async def test_routes_are_labelled_by_template_and_unmatched_paths_by_one_label(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/admin/members/bob")).status_code == 401
    assert (await client.get("/no/such/path-123")).status_code == 404
    answer = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert answer.headers["x-request-id"] == "abc-123"
    scraped = (await client.get("/metrics", headers=METRICS_AUTH)).text
    samples = metrics_text(scraped)
    routes = {labels["route"] for labels, _ in samples["identity_http_requests_total"]}
    assert {"/api/admin/members/{user_name}", "unmatched", "/healthz"} <= routes
    assert "path-123" not in scraped and 'route="/api/admin/members/bob"' not in scraped
    statuses = {
        (labels["route"], labels["status"]) for labels, _ in samples["identity_http_requests_total"]
    }
    assert ("unmatched", "404") in statuses and (
        "/api/admin/members/{user_name}",
        "401",
    ) in statuses


async def test_a_failed_back_channel_delivery_is_counted_and_pending_until_given_up(
    settings: Settings, db: Database, client: httpx.AsyncClient
) -> None:
    """The worker's counter by outcome, and the outbox gauge every replica reports."""
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            insert(LogoutDelivery).values(
                client_id="c-1", uri=f"http://127.0.0.1:{free_port()}/logout", sid="s" * 43,
                tenant_id="t-1", user_name="u", attempts=0, created_at=now, next_attempt_at=now,
            )
        )  # fmt: skip

    async def pending() -> float:
        samples = metrics_text((await client.get("/metrics", headers=METRICS_AUTH)).text)
        [(_, value)] = samples["identity_backchannel_outbox_pending"]
        return value

    assert await pending() == 1
    metrics = WorkerMetrics()
    failures = metrics.backchannel_failures
    async with httpx.AsyncClient(timeout=5) as http:
        first = await deliver_due(db, settings, http, now, failures=failures)
        assert first["retried"] == 1
        assert failed(metrics, "retried") == 1 and failed(metrics, "given_up") == 0
        later = now + timedelta(hours=settings.backchannel_give_up_hours, seconds=1)
        assert (await deliver_due(db, settings, http, later, failures=failures))["given_up"] == 1
    assert failed(metrics, "given_up") == 1
    assert await pending() == 0


def failed(metrics: WorkerMetrics, outcome: str) -> float | None:
    name = "identity_backchannel_delivery_failures_total"
    return metrics.registry.get_sample_value(name, {"outcome": outcome})


def test_the_worker_serves_its_failure_counter_on_the_metrics_port(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env |= {
        "IDENTITY_DATABASE_URL": database_url,
        "IDENTITY_SECRET_KEY": SECRET_KEY,
        "IDENTITY_METRICS_PORT": str(port),
        "PYTHONPATH": str(ROOT),
    }
    out = tmp_path / "worker.log"
    with out.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "identity.cli", "worker"], env=env, cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:

            def scraped() -> bool:
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/metrics")
                except httpx.TransportError:
                    return False
                return "identity_backchannel_delivery_failures_total" in answer.text

            until_sync(scraped, "the worker's /metrics", within=20, every=0.1)
        finally:
            worker.terminate()
            worker.wait(10)
    log_lines(out.read_text())


async def test_a_failing_request_is_a_500_with_its_id_on_the_one_line_it_logs(
    settings: Settings, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/_boom/{thing}", boom)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.base_url) as client:
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            answer = await client.get("/_boom/1", headers={"X-Request-ID": "req-500"})
        scraped = (await client.get("/metrics", headers=METRICS_AUTH)).text
    await app.state.db.dispose()
    assert answer.status_code == 500 and answer.headers["x-request-id"] == "req-500"
    assert answer.headers["x-frame-options"] == "DENY"  # the security headers still wrap it
    # Captured here, or printed once another test configured (and cached) the JSON logger.
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [failed_line] = [line for line in logs + printed if line["event"] == "request_failed"]
    assert failed_line["request_id"] == "req-500"
    assert structlog.contextvars.get_contextvars() == {}  # nothing left bound after it
    samples = metrics_text(scraped)["identity_http_requests_total"]
    assert ({"route": "/_boom/{thing}", "method": "GET", "status": "500"}, 1.0) in samples
