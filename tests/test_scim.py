"""SCIM for the apps' backends, as they use it: a client registered with `directory.read` takes a
token with the client-credentials grant and reads one enterprise's directory at
`/scim/v2/{tenantId}`, through the real app over ASGI, the directory provisioned by signed
marketplace calls. What it may read (its app's tenants and members, nothing else), what a
resource holds, and the protocol around it (discovery, 401 and 404, ETags, writes refused)."""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from scim2_client.engines.httpx2 import AsyncSCIMClient
from scim2_models import Group, ListResponse, ScimFilter, SearchRequest, User
from sqlalchemy import func, select

from identity.app import create_app
from identity.db import Database
from identity.marketplace.client_secret import encrypt_client_secret
from identity.models import Authorisation, Member
from identity.provider import clients
from identity.provider.tokens import Subjects
from identity.scim import resources
from identity.settings import Settings
from tests.helpers.kit_bodies import (
    all_org_body,
    app_body,
    auth_body,
    kit_ok,
    new_instance,
    org,
    stamp,
    tenant_body,
    user,
)
from tests.helpers.marketplace_client import SECRET_KEY, SignedCalls
from tests.helpers.servers import METRICS_TOKEN

BASE = "https://identity.example.com"
ACME, BETA = "T-ACME", "T-BETA"
APP, APP2 = "APP-1", "APP-2"
SCIM = "application/scim+json"
DEPARTMENTS = [org("D1", name="Sales"), org("D2", "D1", "East"), org("D3", name="Ops")]
ALICE = user(
    "alice",
    name="Alice Liu",
    orgCode="D2",
    role="admin",
    position="CTO",
    employeeCode="E-1",
    employeeType=2,
    mobile="+8613800000000",
    email="alice@acme.example.com",
    workPlace="Shenzhen",
    entryDate="2022-11-9",
)


class Reader:
    """An app's backend with its directory token, reading one tenant."""

    def __init__(self, http: httpx.AsyncClient, token: str, tenant_id: str) -> None:
        self.http, self.token, self.tenant_id = http, token, tenant_id

    @property
    def base(self) -> str:
        return f"{BASE}/scim/v2/{self.tenant_id}"

    async def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        return await self.http.get(f"/scim/v2/{self.tenant_id}/{path}", params=params, headers=sent)

    async def send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.request(
            method,
            f"/scim/v2/{self.tenant_id}/{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": SCIM},
        )

    async def users(self, **params: Any) -> dict[str, Any]:
        answer = await self.get("Users", **params)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    async def names(self, **params: Any) -> list[str]:
        return [u["userName"] for u in (await self.users(**params)).get("Resources", [])]

    def at(self, tenant_id: str) -> Reader:
        return Reader(self.http, self.token, tenant_id)


async def reader(client: httpx.AsyncClient, db: Database, app_id: str, tenant_id: str) -> Reader:
    """A client of `app_id` registered with `directory.read`, and its token."""
    registration = clients.Registration(
        app_id, "Directory reader", [], [], None, None, public=False,
        scopes=[clients.DIRECTORY_SCOPE],
    )  # fmt: skip
    async with db.transaction() as session:
        added = await clients.add(session, registration)
    basic = base64.b64encode(f"{added.client_id}:{added.secret}".encode()).decode()
    answer = await client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert answer.status_code == 200, answer.text
    return Reader(client, answer.json()["access_token"], tenant_id)


async def enterprise(
    marketplace: SignedCalls, key: rsa.RSAPrivateKey, tenant_id: str, code: str, app_id: str
) -> dict[str, str]:
    """A tenant bound to an instance of its own, with `app_id`'s credential; its calls' ids."""
    instance = await new_instance(marketplace, f"O-{tenant_id}")
    on = {"instanceId": instance, "tenantId": tenant_id}
    await kit_ok(
        marketplace, "tenantSync", tenant_body(tenantCode=code, orderId=f"O-{tenant_id}", **on)
    )
    secret = encrypt_client_secret(key.public_key(), "s3cret")
    await kit_ok(marketplace, "applicationSync", app_body(secret, appId=app_id, **on))
    return on


@pytest.fixture
async def acme(marketplace: SignedCalls, private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    """acme with APP-1: three departments; alice (everything given), Bob, carol (disabled) and
    dan (cancelled) for APP-1, erin for APP-2 only. beta holds APP-2 alone, with frank."""
    on = await enterprise(marketplace, private_key, ACME, "acme", APP)
    await kit_ok(marketplace, "allOrgSync", all_org_body(DEPARTMENTS, **on))
    people = [ALICE, user("Bob", orgCode="D1"), user("carol", enable="false"), user("dan")]
    await kit_ok(marketplace, "authSync", auth_body(people, **on))
    await kit_ok(
        marketplace, "authSync", auth_body([user("dan")], flag=3, currentSyncTime=stamp(2), **on)
    )
    await kit_ok(marketplace, "authSync", auth_body([user("erin")], appId=APP2, **on))
    beta = await enterprise(marketplace, private_key, BETA, "beta", APP2)
    await kit_ok(marketplace, "authSync", auth_body([user("frank")], appId=APP2, **beta))
    return on


@pytest.fixture
async def app1(client: httpx.AsyncClient, db: Database, acme: dict[str, str]) -> Reader:
    return await reader(client, db, APP, ACME)


# --- discovery and authentication ---------------------------------------------------------------


async def test_the_configuration_needs_no_token_and_says_what_is_supported(
    client: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    answer = await client.get(f"/scim/v2/{ACME}/ServiceProviderConfig")
    assert answer.status_code == 200 and answer.headers["content-type"] == SCIM
    config = answer.json()
    assert config["patch"] == {"supported": False}
    assert config["bulk"]["supported"] is False
    assert config["filter"] == {"supported": True, "maxResults": 200}
    assert config["changePassword"] == {"supported": False}
    assert config["sort"] == {"supported": False}
    assert config["etag"] == {"supported": True}
    assert [s["type"] for s in config["authenticationSchemes"]] == ["oauthbearertoken"]
    assert config["meta"]["location"] == f"{BASE}/scim/v2/{ACME}/ServiceProviderConfig"


async def test_schemas_and_resource_types_need_the_token_and_name_our_extensions(
    client: httpx.AsyncClient, app1: Reader
) -> None:
    for path in ("ResourceTypes", "Schemas"):
        refused = await client.get(f"/scim/v2/{ACME}/{path}")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith(
            "Bearer"
        )
    types = {t["name"]: t for t in (await app1.get("ResourceTypes")).json()["Resources"]}
    assert types["User"]["endpoint"] == "/Users" and types["Group"]["endpoint"] == "/Groups"
    assert [e["schema"] for e in types["User"]["schemaExtensions"]] == [
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        resources.USER_SCHEMA,
    ]
    schemas = {s["id"]: s for s in (await app1.get("Schemas")).json()["Resources"]}
    ours = {a["name"] for a in schemas[resources.USER_SCHEMA]["attributes"]}
    assert ours == {"orgCode", "workPlace", "entryDate", "subject"}
    assert "parent" in {a["name"] for a in schemas[resources.GROUP_SCHEMA]["attributes"]}
    assert schemas[resources.USER_SCHEMA]["meta"]["location"].startswith(f"{BASE}/scim/v2/{ACME}/")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-token", "Basic YTpi"],
    ids=["none", "empty", "garbage", "basic"],
)
async def test_no_live_directory_token_is_a_401(
    client: httpx.AsyncClient, acme: dict[str, str], authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("Users", "Groups", f"Users/{resources.user_id('alice')}"):
        answer = await client.get(f"/scim/v2/{ACME}/{path}", headers=headers)
        assert answer.status_code == 401 and answer.headers["content-type"] == SCIM
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


async def test_a_client_without_the_directory_scope_gets_no_token(
    client: httpx.AsyncClient, db: Database, acme: dict[str, str]
) -> None:
    registration = clients.Registration(APP, "Sign-in only", ["https://a.example.com/cb"], [],
                                        None, None, public=False)  # fmt: skip
    async with db.transaction() as session:
        added = await clients.add(session, registration)
    basic = base64.b64encode(f"{added.client_id}:{added.secret}".encode()).decode()
    answer = await client.post("/oauth2/token", data={"grant_type": "client_credentials"},
                               headers={"Authorization": f"Basic {basic}"})  # fmt: skip
    assert answer.status_code == 400


# --- who sees what ----------------------------------------------------------------------------


async def test_a_client_reads_its_apps_members_of_its_tenant_and_nothing_else(
    client: httpx.AsyncClient, db: Database, app1: Reader
) -> None:
    assert await app1.names() == ["Bob@acme", "alice@acme", "carol@acme", "dan@acme"]
    erin = await app1.get(f"Users/{resources.user_id('erin')}")  # acme's, but APP-2's only
    assert erin.status_code == 404
    assert await app1.names(filter='userName eq "erin@acme"') == []

    # beta holds APP-2 only: for APP-1's client, beta is no directory at all, like a tenant
    # that does not exist.
    for tenant in (BETA, "T-NOWHERE"):
        for path in ("Users", "Groups", "ResourceTypes", f"Users/{resources.user_id('frank')}"):
            answer = await app1.at(tenant).get(path)
            assert answer.status_code == 404, (tenant, path)
            assert answer.json()["detail"] == "no such tenant"

    app2 = await reader(client, db, APP2, BETA)
    assert await app2.names() == ["frank@beta"]
    # erin is authorised for APP-2 in acme, but acme holds no APP-2 credential: not APP-2's.
    assert (await app2.at(ACME).get("Users")).status_code == 404


async def test_tenants_holding_the_same_app_stay_apart(
    marketplace: SignedCalls, private_key: rsa.RSAPrivateKey, app1: Reader
) -> None:
    """gamma holds APP-1 too: the same client reads both, each under its own base URL only."""
    gamma = await enterprise(marketplace, private_key, "T-GAMMA", "gamma", APP)
    await kit_ok(marketplace, "authSync", auth_body([user("grace"), user("alice")], **gamma))
    assert await app1.at("T-GAMMA").names() == ["alice@gamma", "grace@gamma"]
    assert "grace@acme" not in await app1.names()
    assert (await app1.get(f"Users/{resources.user_id('grace')}")).status_code == 404
    assert await app1.names(filter='userName eq "grace@gamma"') == []
    acme_alice = (await app1.get(f"Users/{resources.user_id('alice')}")).json()
    gamma_alice = (await app1.at("T-GAMMA").get(f"Users/{resources.user_id('alice')}")).json()
    assert acme_alice["id"] == gamma_alice["id"]  # ids are per tenant, as the base URL is
    assert acme_alice["userName"] == "alice@acme" and gamma_alice["userName"] == "alice@gamma"
    assert acme_alice["displayName"] != gamma_alice["displayName"]
    subject = resources.USER_SCHEMA
    assert acme_alice[subject]["subject"] != gamma_alice[subject]["subject"]


async def test_a_frozen_or_released_instance_closes_the_directory(
    client: httpx.AsyncClient, marketplace: SignedCalls, app1: Reader, acme: dict[str, str]
) -> None:
    assert (await app1.get("Users")).status_code == 200
    frozen = {
        "activity": "updateInstanceStatus",
        "instanceId": acme["instanceId"],
        "status": "FREEZE",
    }
    assert (await marketplace.basic(frozen))["resultCode"] == "000000"
    assert (await app1.get("Users")).status_code == 404
    assert (await app1.get(f"Groups/{resources.group_id('D1')}")).status_code == 404
    assert (await marketplace.basic({**frozen, "status": "UNFREEZE"}))["resultCode"] == "000000"
    assert (await app1.get("Users")).status_code == 200
    released = {"activity": "releaseInstance", "instanceId": acme["instanceId"]}
    assert (await marketplace.basic(released))["resultCode"] == "000000"
    assert (await app1.get("Users")).status_code == 404


async def test_a_deleted_credential_or_tenant_closes_it_too(
    marketplace: SignedCalls, private_key: rsa.RSAPrivateKey, app1: Reader, acme: dict[str, str]
) -> None:
    secret = encrypt_client_secret(private_key.public_key(), "s3cret")
    gone = app_body(secret, flag=0, timeStamp=stamp(3), **acme)
    await kit_ok(marketplace, "applicationSync", gone)
    assert (await app1.get("Users")).status_code == 404
    await kit_ok(marketplace, "applicationSync", app_body(secret, timeStamp=stamp(4), **acme))
    assert (await app1.get("Users")).status_code == 200
    await kit_ok(marketplace, "tenantSync", tenant_body(flag=0, timeStamp=stamp(5), **acme))
    assert (await app1.get("Users")).status_code == 404


# --- what a resource holds --------------------------------------------------------------------


async def test_a_user_holds_what_the_marketplace_said_and_the_sub_of_its_sign_ins(
    app1: Reader,
) -> None:
    uid = resources.user_id("alice")
    answer = await app1.get(f"Users/{uid}")
    assert answer.status_code == 200
    alice = answer.json()
    assert answer.headers["etag"] == alice["meta"]["version"]
    assert answer.headers["etag"].startswith('W/"')
    assert answer.headers["content-location"] == f"{app1.base}/Users/{uid}"
    assert alice["id"] == uid and base64.urlsafe_b64decode(uid + "==") == b"alice"
    assert alice["userName"] == "alice@acme"
    assert alice["name"] == {"formatted": "Alice Liu"} and alice["displayName"] == "Alice Liu"
    assert alice["active"] is True and alice["title"] == "CTO" and alice["userType"] == "2"
    assert alice["emails"] == [{"value": "alice@acme.example.com", "primary": True}]
    assert alice["phoneNumbers"] == [{"value": "+8613800000000", "type": "mobile"}]
    assert alice["roles"] == [{"value": "admin", "primary": True}]
    east = resources.group_id("D2")
    assert alice["groups"] == [
        {"value": east, "$ref": f"{app1.base}/Groups/{east}", "display": "East", "type": "direct"}
    ]
    assert alice["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] == {
        "employeeNumber": "E-1",
        "department": "East",
    }
    assert alice[resources.USER_SCHEMA] == {
        "orgCode": "D2",
        "workPlace": "Shenzhen",
        "entryDate": "2022-11-9",
        "subject": Subjects(SECRET_KEY).sub(ACME, "alice"),
    }
    meta = alice["meta"]
    assert meta["resourceType"] == "User" and meta["location"] == f"{app1.base}/Users/{uid}"
    assert meta["created"] <= meta["lastModified"]


async def test_the_base_url_is_the_configured_one_whatever_the_host(app1: Reader) -> None:
    answer = await app1.get("Users", headers={"Host": "evil.example.net"}, count="1")
    found = answer.json()["Resources"][0]
    assert found["meta"]["location"].startswith(f"{BASE}/scim/v2/{ACME}/Users/")
    group = await app1.get(
        f"Groups/{resources.group_id('D1')}", headers={"Host": "evil.example.net"}
    )
    assert all(m["$ref"].startswith(f"{BASE}/") for m in group.json()["members"])


async def test_disabled_and_cancelled_members_are_listed_inactive_deleted_ones_not_at_all(
    marketplace: SignedCalls, app1: Reader, acme: dict[str, str]
) -> None:
    found = {u["userName"]: u["active"] for u in (await app1.users())["Resources"]}
    assert found == {"alice@acme": True, "Bob@acme": True, "carol@acme": False, "dan@acme": False}
    await kit_ok(
        marketplace, "authSync", auth_body([user("Bob")], flag=0, currentSyncTime=stamp(3), **acme)
    )
    assert "Bob@acme" not in await app1.names()
    assert (await app1.get(f"Users/{resources.user_id('Bob')}")).status_code == 404


async def test_a_group_lists_its_visible_members_and_its_parent(app1: Reader) -> None:
    listed = {g["displayName"]: g for g in (await app1.get("Groups")).json()["Resources"]}
    assert set(listed) == {"Sales", "East", "Ops"}
    sales, east = listed["Sales"], listed["East"]
    assert sales["id"] == resources.group_id("D1")
    # Bob, carol and dan are APP-1's; erin (in Sales too) is APP-2's only: no member here.
    names = ["Bob", "carol", "dan"]
    assert sales["members"] == [
        {"value": resources.user_id(name), "$ref": f"{app1.base}/Users/{resources.user_id(name)}",
         "type": "User", "display": f"Name of {name}"}
        for name in names
    ]  # fmt: skip
    assert [m["display"] for m in east["members"]] == ["Alice Liu"]
    assert east[resources.GROUP_SCHEMA]["parent"] == {
        "value": sales["id"],
        "$ref": f"{app1.base}/Groups/{sales['id']}",
    }
    assert "parent" not in sales[resources.GROUP_SCHEMA]
    assert "members" not in listed["Ops"]


async def test_unknown_ids_are_404(app1: Reader) -> None:
    for uid in (resources.user_id("nobody"), "not base64!", "YWxpY2U=", "YWxpY2V", "AA"):
        answer = await app1.get(f"Users/{uid}")
        assert answer.status_code == 404 and answer.headers["content-type"] == SCIM, uid
    assert (await app1.get(f"Groups/{resources.group_id('D9')}")).status_code == 404


# --- the protocol ---------------------------------------------------------------------------


async def test_if_none_match_answers_304_until_the_user_changes(
    marketplace: SignedCalls, app1: Reader, acme: dict[str, str]
) -> None:
    uid = resources.user_id("alice")
    first = await app1.get(f"Users/{uid}")
    tag = first.headers["etag"]
    same = await app1.get(f"Users/{uid}", headers={"If-None-Match": tag})
    assert same.status_code == 304 and same.headers["etag"] == tag and same.content == b""
    # A sync that changes nothing the resource shows keeps the tag.
    await kit_ok(
        marketplace, "authSync", auth_body([ALICE], flag=2, currentSyncTime=stamp(3), **acme)
    )
    assert (await app1.get(f"Users/{uid}", headers={"If-None-Match": tag})).status_code == 304
    renamed = {**ALICE, "name": "Alice Wang"}
    await kit_ok(
        marketplace, "authSync", auth_body([renamed], flag=2, currentSyncTime=stamp(4), **acme)
    )
    changed = await app1.get(f"Users/{uid}", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert changed.json()["displayName"] == "Alice Wang"


async def test_attributes_and_excluded_attributes_shape_the_answer(app1: Reader) -> None:
    uid = resources.user_id("alice")
    few = (await app1.get(f"Users/{uid}", attributes="userName,emails")).json()
    assert set(few) == {"schemas", "id", "userName", "emails"}
    without = (await app1.get(f"Users/{uid}", excludedAttributes="emails,phoneNumbers")).json()
    assert "emails" not in without and "phoneNumbers" not in without and "userName" in without
    page = await app1.users(attributes="userName", count="2")
    assert [set(u) for u in page["Resources"]] == [{"schemas", "id", "userName"}] * 2
    groups = (await app1.get("Groups", excludedAttributes="members")).json()["Resources"]
    assert groups and all("members" not in g for g in groups)
    gid = resources.group_id("D1")
    whole = await app1.get(f"Groups/{gid}")
    bare = await app1.get(f"Groups/{gid}", excludedAttributes="members")
    assert "members" in whole.json() and "members" not in bare.json()
    # Each representation has its own tag, and each answers its own If-None-Match.
    assert whole.headers["etag"] != bare.headers["etag"]
    again = await app1.get(f"Groups/{gid}", {"If-None-Match": bare.headers["etag"]},
                           excludedAttributes="members")  # fmt: skip
    assert again.status_code == 304


WRITES = [
    ("POST", "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"}),
    ("PUT", "Users/YWxpY2U", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                              "userName": "alice@acme"}),
    ("PATCH", "Users/YWxpY2U", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                "Operations": [{"op": "replace", "path": "active",
                                                "value": False}]}),
    ("DELETE", "Users/YWxpY2U", None),
    ("DELETE", f"Groups/{resources.group_id('D1')}", None),
    ("POST", "Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": "New"}),
    ("POST", "Bulk", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                      "Operations": [{"method": "DELETE", "path": "/Users/YWxpY2U"}]}),
    ("GET", "Me", None),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
async def test_writes_are_refused_501_and_change_nothing(
    db: Database, app1: Reader, method: str, path: str, body: Any
) -> None:
    before = await _directory(db)
    answer = await app1.send(method, path, body)
    assert answer.status_code == 501, answer.text
    assert answer.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert await _directory(db) == before


async def test_a_write_without_a_token_is_a_401_first(client: httpx.AsyncClient, acme: Any) -> None:
    answer = await client.delete(f"/scim/v2/{ACME}/Users/{resources.user_id('alice')}")
    assert answer.status_code == 401


async def _directory(db: Database) -> list[Any]:
    async with db.read() as session:
        members = (await session.execute(select(Member).order_by(Member.user_name))).scalars()
        grants = await session.scalar(select(func.count()).select_from(Authorisation))
        return [(m.user_name, m.name, m.state, m.updated_at) for m in members] + [grants]


async def test_the_change_events_get_exactly_what_a_get_answers(db: Database, app1: Reader) -> None:
    subjects = Subjects(SECRET_KEY)
    async with db.single_read() as conn:
        users = await resources.users_json(
            conn, BASE, subjects, ACME, APP, ["alice", "erin", "zed"]
        )
        groups = await resources.groups_json(conn, BASE, ACME, ["D1", "D2", "D9"])
    assert set(users) == {"alice"} and set(groups) == {"D1", "D2"}
    assert users["alice"] == (await app1.get(f"Users/{resources.user_id('alice')}")).json()
    bare = await app1.get(f"Groups/{resources.group_id('D2')}", excludedAttributes="members")
    assert groups["D2"] == bare.json()


async def test_a_database_outage_is_a_503_to_retry(settings: Settings) -> None:
    down = settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/x"}
    )
    app = create_app(down)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as failing:
        answer = await failing.get(
            f"/scim/v2/{ACME}/Users", headers={"Authorization": "Bearer x.y.z"}
        )
    await app.state.db.dispose()
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.json() == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": "503",
        "detail": "the database is unavailable; retry",
    }


async def test_requests_are_counted_by_route_template(
    client: httpx.AsyncClient, app1: Reader
) -> None:
    await app1.get(f"users/{resources.user_id('alice')}")
    await app1.get("Users")
    await app1.get("Nope/1")
    metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    routes = set(re.findall(r'identity_http_requests_total\{[^}]*route="([^"]+)"', metrics.text))
    assert {"/scim/v2/{tenant_id}/Users/{resource_id}", "/scim/v2/{tenant_id}/Users"} <= routes
    assert not any(ACME in route or "alice" in route or "Nope" in route for route in routes)


def _leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """(attribute path, value) of every value in a resource's JSON: `emails.value`, and an
    extension's attributes under its URN (`urn:…:User:employeeNumber`)."""
    if isinstance(node, list):
        return [leaf for item in node for leaf in _leaves(item, path)]
    if not isinstance(node, dict):
        return [(path, node)]
    found = []
    for key, value in node.items():
        if not path or key.startswith("urn:"):
            name = key
        else:
            name = f"{path}:{key}" if path.startswith("urn:") else f"{path}.{key}"
        found += _leaves(value, name)
    return found


async def test_every_attribute_a_user_shows_can_be_filtered_on_or_is_refused(
    app1: Reader,
) -> None:
    """No attribute a User shows reads as absent in SQL: filtering on its own value finds it,
    or the filter is refused as one that cannot be read (never a silent empty answer)."""
    alice = (await app1.get(f"Users/{resources.user_id('alice')}")).json()
    leaves = [(p, v) for p, v in _leaves(alice) if p != "schemas"]
    assert len(leaves) > 25
    refused = set()
    for path, value in leaves:
        expression = f"{path} eq {ScimFilter.quote(value)}"
        answer = await app1.get("Users", filter=expression)
        if answer.status_code == 400:
            assert answer.json()["scimType"] == "invalidFilter", expression
            refused.add(path)
            continue
        assert answer.status_code == 200, (expression, answer.text)
        assert alice["id"] in {u["id"] for u in answer.json()["Resources"]}, expression
    subject = f"{resources.USER_SCHEMA}:subject"
    assert refused == {"meta.location", "meta.version", "groups.$ref", subject}


async def test_a_search_may_be_posted_and_the_root_is_not_searched(app1: Reader) -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'userName sw "a"',
        "attributes": ["userName"],
    }
    posted = await app1.send("POST", "Users/.search", body)
    assert posted.status_code == 200, posted.text
    assert [u["userName"] for u in posted.json()["Resources"]] == ["alice@acme"]
    root = await app1.get("")
    assert root.status_code == 501 and "one at a time" in root.json()["detail"]


async def test_a_scim_client_library_discovers_and_reads_it(
    client: httpx.AsyncClient, app1: Reader
) -> None:
    """scim2-client (what identity.client's DirectoryReader uses) builds its models from our
    Schemas and ResourceTypes, extensions included, and reads Users and Groups with them."""
    http = httpx.AsyncClient(
        transport=client._transport,
        base_url=app1.base,
        headers={"Authorization": f"Bearer {app1.token}"},
    )
    async with http:
        scim = AsyncSCIMClient(http)
        await scim.discover()
        page = await scim.query(User, query_parameters=SearchRequest(filter='userName sw "al"'))
        assert isinstance(page, ListResponse) and page.total_results == 1
        alice = page.resources[0]
        extension = alice.model_dump()[resources.USER_SCHEMA]
        assert extension["subject"] == Subjects(SECRET_KEY).sub(ACME, "alice")
        again = await scim.query(User, alice.id)
        assert again.meta.version == alice.meta.version
        groups = await scim.query(Group)
        assert {g.display_name for g in groups.resources} == {"Sales", "East", "Ops"}


async def test_a_header_that_is_not_text_is_a_400(app1: Reader) -> None:
    headers = {"Authorization": f"Bearer {app1.token}".encode(), "X-Note": b"\xff\xfe"}
    answer = await app1.http.get(f"/scim/v2/{ACME}/Users", headers=headers)
    assert answer.status_code == 400 and answer.json()["scimType"] == "invalidSyntax"


async def test_an_incremental_read_finds_what_a_sync_changed(
    marketplace: SignedCalls, app1: Reader, acme: dict[str, str]
) -> None:
    everyone = (await app1.users())["Resources"]
    newest = max(u["meta"]["lastModified"] for u in everyone)
    assert await app1.names(filter=f'meta.lastModified gt "{newest}"') == []
    moved = user("carol", enable="true", orgCode="D2")
    await kit_ok(
        marketplace, "authSync", auth_body([moved], flag=2, currentSyncTime=stamp(3), **acme)
    )
    changed = (await app1.users(filter=f'meta.lastModified gt "{newest}"'))["Resources"]
    assert [(u["userName"], u["active"]) for u in changed] == [("carol@acme", True)]
    assert changed[0]["groups"][0]["display"] == "East"
