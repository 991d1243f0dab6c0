"""identity against a relying party this project did not write: npm's openid-client (v6),
driven through tests/rp/rp.mjs, in real processes (identity and the simulator from the `stack`
fixture, node per step). openid-client finds every endpoint through discovery and validates what
it gets itself (state and iss of the authorization response, the ID token's signature, iss, aud,
exp and nonce, userinfo's sub); oauth4webapi checks the access token as a resource server would.
Only the browser's trip through the marketplace login is done here, by hand."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import pytest

from identity.crypto import Cipher
from identity.db import Database, utcnow
from identity.provider import clients, keys
from tests.helpers.marketplace_client import SECRET_KEY
from tests.helpers.simulator_world import APP_ID, login_form
from tests.helpers.stack import Browser, Stack

RP_DIR = Path(__file__).parent / "rp"
REDIRECT = "http://127.0.0.1:9/callback"  # never fetched: the browser stops at it
AFTER_LOGOUT = "http://127.0.0.1:9/signed-out"
HINT = json.dumps({"login_hint": "alice@acme"})  # the tenant, for identity's marketplace login
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


class Refused(Exception):
    """openid-client refused what identity answered: its error as JSON."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(json.dumps(error))
        self.error = error

    def reason(self) -> str:
        """The innermost message: openid-client wraps oauth4webapi's specific one."""
        error = self.error
        while isinstance(error.get("cause"), dict) and "message" in error["cause"]:
            error = error["cause"]
        return str(error["message"])


class RelyingParty:
    """One app's back end: `node rp.mjs STATE COMMAND`, the app's memory in the state file."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file

    async def run(self, command: str, *args: str) -> dict[str, Any]:
        assert NODE is not None
        process = await asyncio.create_subprocess_exec(
            *(NODE, str(RP_DIR / "rp.mjs"), str(self.state_file), command, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        lines = out.decode().strip().splitlines()
        assert lines, f"rp.mjs {command} printed nothing: {err.decode()}"
        answer: dict[str, Any] = json.loads(lines[-1])
        if process.returncode == 1 and "error" in answer:
            raise Refused(answer["error"])
        assert process.returncode == 0, err.decode()
        return answer

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def node_modules() -> Iterator[None]:
    """openid-client as the lock file pins it; `make test` installs it, this for a bare pytest."""
    if NODE is not None and not (RP_DIR / "node_modules" / "openid-client").is_dir():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install tests/rp (make test does it)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=RP_DIR, check=True)
    yield


async def register(
    stack: Stack,
    db: Database,
    directory: Path,
    *,
    auth_method: str = "client_secret_basic",
    name: str = "node-app",
) -> RelyingParty:
    """A client of the demo app in the database, and the Node app's state file for it."""
    registration = clients.Registration(
        app_id=APP_ID,
        name=name,
        redirect_uris=[REDIRECT],
        post_logout_redirect_uris=[AFTER_LOGOUT],
        backchannel_logout_uri=None,
        initiate_login_uri=None,
        public=auth_method == "none",
    )
    async with db.transaction() as session:
        added = await clients.add(session, registration)
        client_id, secret = added.client_id, added.secret
    state = directory / f"{name}.json"
    app = {
        "issuer": stack.identity,
        "client_id": client_id,
        "client_secret": secret,
        "auth_method": auth_method,
        "redirect_uri": REDIRECT,
        "post_logout_redirect_uri": AFTER_LOGOUT,
    }
    state.write_text(json.dumps(app))
    return RelyingParty(state)


@pytest.fixture
async def rp(acme: Stack, db: Database, node_modules: None, tmp_path: Path) -> RelyingParty:
    """A confidential client authenticating with client_secret_basic."""
    return await register(acme, db, tmp_path)


async def browse(browser: Browser, url: str, until: str, account: str = "alice@acme") -> str:
    """Follow the browser from `url` (signing in at the simulator's form when it shows) until a
    redirect to `until`; that redirect's URL, never fetched."""
    response = await browser.http.get(url)
    for _ in range(12):
        location = response.headers.get("location", "")
        if location.startswith(until):
            return str(location)
        if response.status_code == 200 and login_form(response.text).action:
            password = account.split("@")[0] + "-pw"
            response = await browser.post_login(response, account, password)
            continue
        assert response.status_code in (302, 303), (response.status_code, response.text)
        response = await browser.http.get(urljoin(str(response.url), location))
    raise AssertionError(f"never got to {until}")


async def sign_in(rp: RelyingParty, browser: Browser) -> dict[str, Any]:
    """The app's login: authorization URL, the browser's trip, the callback's tokens."""
    start = await rp.run("start", HINT)
    landed = await browse(browser, start["url"], REDIRECT)
    return await rp.run("callback", landed)


def jwt_header(token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))  # type: ignore[no-any-return]


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


async def test_openid_client_signs_in_and_validates_the_id_token(
    acme: Stack, rp: RelyingParty, browser: Browser
) -> None:
    start = await rp.run("start", HINT)
    assert start["metadata"]["issuer"] == acme.identity
    landed = await browse(browser, start["url"], REDIRECT)
    signed_in = await rp.run("callback", landed)
    claims, tokens = signed_in["claims"], signed_in["tokens"]
    state = rp.state()
    assert claims["iss"] == acme.identity and claims["aud"] == state["client_id"]
    assert claims["nonce"] == state["pending"]["nonce"]
    assert claims["preferred_username"] == "alice" and claims["tenant_code"] == "acme"
    assert tokens["token_type"].lower() == "bearer" and tokens["refresh_token"]

    info = await rp.run("userinfo")
    assert info["sub"] == claims["sub"] and info["preferred_username"] == "alice"
    resource = await rp.run("resource")  # RFC 9068, as the app's API would check it
    assert resource["sub"] == claims["sub"] and resource["client_id"] == state["client_id"]


async def test_openid_client_refuses_a_wrong_state_or_nonce(
    rp: RelyingParty, browser: Browser
) -> None:
    start = await rp.run("start", HINT)
    landed = await browse(browser, start["url"], REDIRECT)
    with pytest.raises(Refused) as wrong_state:
        await rp.run("callback", with_query(landed, state="forged"))
    assert wrong_state.value.reason() == 'unexpected "state" response parameter value'

    state = rp.state()  # the app's own nonce differs from the one in the ID token
    state["pending"]["nonce"] = "another-nonce"
    rp.state_file.write_text(json.dumps(state))
    with pytest.raises(Refused) as wrong_nonce:
        await rp.run("callback", landed)
    assert wrong_nonce.value.reason() == 'unexpected ID Token "nonce" claim value'


async def test_refresh_gives_new_tokens_that_openid_client_accepts(
    rp: RelyingParty, browser: Browser
) -> None:
    first = await sign_in(rp, browser)
    refreshed = await rp.run("refresh")
    old, new = first["tokens"], refreshed["tokens"]
    assert new["refresh_token"] and new["refresh_token"] != old["refresh_token"]
    assert new["access_token"] != old["access_token"]
    assert refreshed["claims"]["sub"] == first["claims"]["sub"]  # a new ID token, validated
    assert (await rp.run("userinfo"))["sub"] == first["claims"]["sub"]
    assert (await rp.run("introspect", "previous_refresh_token")) == {"active": False}
    assert (await rp.run("introspect", "refresh_token"))["active"] is True


async def test_introspection_then_revocation(rp: RelyingParty, browser: Browser) -> None:
    signed_in = await sign_in(rp, browser)
    seen = await rp.run("introspect")
    assert seen["active"] is True and seen["sub"] == signed_in["claims"]["sub"]
    assert seen["client_id"] == rp.state()["client_id"]
    assert (await rp.run("revoke")) == {"revoked": "access_token"}
    assert (await rp.run("introspect")) == {"active": False}
    assert (await rp.run("introspect", "refresh_token")) == {"active": False}
    with pytest.raises(Refused) as userinfo:
        await rp.run("userinfo")
    assert userinfo.value.error["status"] == 401
    with pytest.raises(Refused) as refresh:
        await rp.run("refresh")
    assert refresh.value.error["error"] == "invalid_grant"


async def test_prompt_none_answers_login_required_then_signs_in_silently(
    rp: RelyingParty, browser: Browser
) -> None:
    silent = json.dumps({"login_hint": "alice@acme", "prompt": "none"})
    start = await rp.run("start", silent)
    landed = await browse(browser, start["url"], REDIRECT)
    with pytest.raises(Refused) as refused:  # after openid-client checked its iss and state
        await rp.run("callback", landed)
    assert refused.value.error["name"] == "AuthorizationResponseError"
    assert refused.value.error["error"] == "login_required"

    first = await sign_in(rp, browser)
    start = await rp.run("start", silent)
    answer = await browser.http.get(start["url"])  # signed in: straight back with a code
    assert answer.headers["location"].startswith(REDIRECT)
    again = await rp.run("callback", answer.headers["location"])
    assert again["claims"]["sub"] == first["claims"]["sub"]
    assert again["claims"]["sid"] == first["claims"]["sid"]


@pytest.mark.parametrize("auth_method", ["client_secret_post", "none"])
async def test_other_client_authentication_methods(
    acme: Stack, db: Database, node_modules: None, tmp_path: Path, browser: Browser,
    auth_method: str,
) -> None:  # fmt: skip
    """client_secret_post, and a public client (`none`, PKCE only)."""
    app = await register(acme, db, tmp_path, auth_method=auth_method)
    signed_in = await sign_in(app, browser)
    assert (await app.run("userinfo"))["sub"] == signed_in["claims"]["sub"]
    refreshed = await app.run("refresh")
    assert refreshed["tokens"]["refresh_token"] != signed_in["tokens"]["refresh_token"]
    await app.run("revoke", "refresh_token")
    with pytest.raises(Refused) as refresh:
        await app.run("refresh")
    assert refresh.value.error["error"] == "invalid_grant"


async def test_an_rs256_key_is_validated_by_openid_client(
    rp: RelyingParty, db: Database, browser: Browser
) -> None:
    now = utcnow()
    async with db.transaction() as session:
        kid = await keys.create(session, Cipher(SECRET_KEY), alg="RS256", activates_at=now, now=now)
    signed_in = await sign_in(rp, browser)
    header = jwt_header(signed_in["tokens"]["id_token"])
    assert header["alg"] == "RS256" and header["kid"] == kid
    assert (await rp.run("resource"))["sub"] == signed_in["claims"]["sub"]


async def test_max_age_makes_the_member_sign_in_again(rp: RelyingParty, browser: Browser) -> None:
    """OIDC Core §3.1.2.1: past `max_age` the provider must authenticate the member again, and
    `auth_time` says when; openid-client checks `auth_time + max_age` against its clock."""
    first = await sign_in(rp, browser)
    state = rp.state()
    state["clock_tolerance"] = 0  # openid-client allows 30 s of skew by default: keep it short
    rp.state_file.write_text(json.dumps(state))
    await asyncio.sleep(2.1)
    start = await rp.run("start", json.dumps({"login_hint": "alice@acme", "max_age": "1"}))
    again = await rp.run("callback", await browse(browser, start["url"], REDIRECT))
    assert again["claims"]["auth_time"] > first["claims"]["auth_time"]


async def test_discovery_names_the_subject_type_that_sub_has(
    acme: Stack, db: Database, node_modules: None, tmp_path: Path, browser: Browser
) -> None:
    first = await register(acme, db, tmp_path, name="first")
    second = await register(acme, db, tmp_path, name="second")
    one, two = await sign_in(first, browser), await sign_in(second, browser)
    assert one["claims"]["sub"] == two["claims"]["sub"]  # one sub across clients
    metadata = (await first.run("start", HINT))["metadata"]
    assert metadata["subject_types_supported"] == ["public"]


async def test_rp_initiated_logout_returns_to_the_app_and_ends_its_tokens(
    rp: RelyingParty, browser: Browser
) -> None:
    await sign_in(rp, browser)
    logout = await rp.run("logout-url")
    back = await browse(browser, logout["url"], AFTER_LOGOUT)
    assert parse_qs(urlsplit(back).query)["state"] == [logout["state"]]
    assert (await rp.run("introspect")) == {"active": False}
    assert (await rp.run("introspect", "refresh_token")) == {"active": False}
    start = await rp.run("start", json.dumps({"login_hint": "alice@acme", "prompt": "none"}))
    with pytest.raises(Refused) as silent:  # the session here has ended too
        await rp.run("callback", await browse(browser, start["url"], REDIRECT))
    assert silent.value.error["error"] == "login_required"
