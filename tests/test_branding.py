"""The ISV's brand: its name, logo and accent on every page, served at addresses that change with
their content; every setting checked at start, in one line."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import httpx2 as httpx
import pytest
from playwright.sync_api import expect

from identity.app import create_app
from identity.branding import DEFAULT_ACCENT
from identity.db import Database
from identity.settings import Settings
from tests.helpers.chromium import VIEWPORTS, chromium_page, needs_chromium, shooter
from tests.helpers.cli import identity, one_line_naming
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY
from tests.helpers.servers import ServiceProcesses, service_env

NAME = "星云办公 Nebula Office"
ACCENT = "#0a7d52"


def png(width: int = 2, height: int = 1) -> bytes:
    """A small, valid PNG (what an ISV's logo file holds)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x0a\x7d\x52" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    logo = tmp_path / "logo.png"
    logo.write_bytes(png())
    return settings.model_copy(
        update={"brand_name": NAME, "brand_accent": ACCENT, "brand_logo_file": logo}
    )


async def test_every_page_carries_the_isvs_name_logo_and_accent(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/sso/login")
    assert page.status_code == 200
    assert "<title>" in page.text and f"· {NAME}</title>" in page.text
    logo = re.search(r'<img class="logo" src="(/brand/logo\.[0-9a-f]{12}\.png)"', page.text)
    theme = re.search(
        r'<link rel="stylesheet" href="(/brand/theme\.[0-9a-f]{12}\.css)">', page.text
    )
    assert logo and theme, page.text[:800]
    assert f"{NAME}</a>" in page.text and 'class="mark"' not in page.text

    image = await client.get(logo.group(1))
    assert image.status_code == 200 and image.content == png()
    assert image.headers["content-type"] == "image/png"
    assert image.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "sandbox" in image.headers["content-security-policy"]
    colours = await client.get(theme.group(1))
    assert colours.headers["content-type"].startswith("text/css")
    assert f"--brand:{ACCENT}" in colours.text
    assert (await client.get("/brand/logo.000000000000.png")).status_code == 404


async def test_without_a_brand_pages_look_as_they_always_have(settings: Settings) -> None:
    plain = settings.model_copy(
        update={"brand_name": "identity", "brand_accent": DEFAULT_ACCENT, "brand_logo_file": None}
    )
    app = create_app(plain)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=plain.base_url) as client:
        page = await client.get("/sso/login")
    await app.state.db.dispose()
    assert "· identity</title>" in page.text
    assert '<span class="mark" aria-hidden="true">i</span>identity</a>' in page.text
    assert "/brand/" not in page.text  # no logo, and the default accent needs no stylesheet


SCRIPTED_SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
HANDLER_SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>'


@pytest.mark.parametrize(
    ("env", "logo", "problem"),
    [
        ({"IDENTITY_BRAND_ACCENT": "blue"}, None, "#rrggbb"),
        ({"IDENTITY_BRAND_ACCENT": "#ffd84d"}, None, "too light for the white text"),
        ({"IDENTITY_BRAND_NAME": "N" * 41}, None, "1 to 40 printable characters"),
        ({}, b"GIF89a", "neither a PNG nor an SVG"),
        ({}, SCRIPTED_SVG, "script or event handlers"),
        ({}, HANDLER_SVG, "script or event handlers"),
        ({}, png() + b"\0" * 262_144, "at most 262144 are allowed"),
        ({"IDENTITY_BRAND_LOGO_FILE": "/no/such/logo.svg"}, None, "cannot be read"),
    ],
    ids=["colour", "contrast", "name", "gif", "script", "handler", "size", "missing"],
)
def test_a_brand_that_cannot_be_used_is_one_line_at_start(
    tmp_path: Path, env: dict[str, str], logo: bytes | None, problem: str
) -> None:
    if logo is not None:
        (tmp_path / "logo").write_bytes(logo)
        env = {**env, "IDENTITY_BRAND_LOGO_FILE": str(tmp_path / "logo")}
    done = identity(tmp_path, "tenants", "list", **env)
    one_line_naming(done, next(iter(env)))
    assert problem in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == (["logo"] if logo else [])


def test_an_svg_logo_and_a_dark_accent_are_accepted(settings: Settings, tmp_path: Path) -> None:
    svg = tmp_path / "logo.svg"
    svg.write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    checked = Settings(_env_file=None, brand_logo_file=svg, brand_accent="#5B21B6")  # type: ignore[call-arg]
    assert checked.brand_accent == "#5b21b6" and checked.brand_logo_file == svg


@needs_chromium
@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_the_brand_as_a_member_sees_it(
    database_url: str, db: Database, tmp_path: Path, viewport: str
) -> None:
    """The enterprise page of a branded deployment, in Chromium (a screenshot to look at)."""
    logo = tmp_path / "logo.svg"
    logo.write_text(NEBULA_SVG)
    env = service_env(database_url, secret_key=SECRET_KEY, basic_key=BASIC_KEY, kit_key=KIT_KEY)
    env |= {"IDENTITY_BRAND_NAME": NAME, "IDENTITY_BRAND_ACCENT": ACCENT}
    env |= {"IDENTITY_BRAND_LOGO_FILE": str(logo)}
    shot = shooter(tmp_path, viewport)
    with ServiceProcesses(1, env) as service, chromium_page(viewport) as page:
        page.goto(service.urls[0] + "/sso/login")
        expect(page.locator("a.brand")).to_have_text(NAME)
        expect(page.locator("a.brand img.logo")).to_be_visible()
        button = page.locator("button, .button").first
        colour = button.evaluate("b => getComputedStyle(b).backgroundColor")
        assert colour == "rgb(10, 125, 82)"  # the accent
        shot(page, "branded")


NEBULA_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
    '<circle cx="32" cy="32" r="30" fill="#0a7d52"/>'
    '<circle cx="24" cy="26" r="8" fill="#ffffff"/><circle cx="42" cy="40" r="5" fill="#c8f2df"/>'
    "</svg>"
)
