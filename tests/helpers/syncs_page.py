"""The console's syncs page as the admin reads it: signed in with a local password over ASGI,
each row's interface, what it says outside its folded detail, and the detail."""

from __future__ import annotations

import html
import re

import httpx2 as httpx

from tests.helpers.admin_rows import OWNER_PASSWORD as PASSWORD
from tests.helpers.simulator_world import login_form


async def signed_in_admin(client: httpx.AsyncClient, account: str) -> httpx.AsyncClient:
    """`client` signed in locally as `account` (an admin with PASSWORD)."""
    page = await client.get("/login")
    fields = {**login_form(page.text).inputs, "account": account, "password": PASSWORD}
    landed = await client.post("/login", data=fields)
    assert landed.status_code == 303, landed.text
    return client


def text_of(fragment: str) -> str:
    """What a person reads in an HTML fragment: tags dropped, entities and spaces as shown."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def sync_rows(page: str) -> list[tuple[str, str, str]]:
    """Each row of the syncs page: its interface, what it says outside its folded detail, and
    the detail."""
    rows = []
    for interface, body in re.findall(r'<tr data-interface="(\w+)">(.*?)</tr>', page, re.S):
        detail = re.search(r"<details.*?</details>", body, re.S)
        assert detail, body
        shown = body.replace(detail.group(0), "")
        rows.append((interface, text_of(shown), text_of(detail.group(0))))
    return rows


async def said_on_syncs_page(admin: httpx.AsyncClient) -> list[tuple[str, str]]:
    """The page's rows, newest first: (interface, what it says outside the detail)."""
    page = await admin.get("/admin/syncs")
    assert page.status_code == 200, page.text
    return [(interface, shown) for interface, shown, _ in sync_rows(page.text)]
