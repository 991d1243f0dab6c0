"""The look every page shares: one layout (`templates/base.html`), one stylesheet
(`static/identity.css`, served at `/static/` with the console menu's script `static/menu.js`),
the ISV's brand on it (`identity.branding`, its logo and accent served at `/brand/`), and what
pages show people instead of codes.

Each feature keeps its own templates in its folder and renders them with `render`, which finds
them and the layout on one search path, so a page of any feature extends `base.html`. Pages are
never cached (they show a member's data, and a refusal must not be replayed from a cache).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from identity.branding import IMMUTABLE, LOGO_POLICY, Brand, logo_type
from identity.web import time_zone

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATE_DIRS = [
    HERE / "templates",
    HERE / "sso" / "templates",
    HERE / "provider" / "templates",
    HERE / "admin" / "templates",
]
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # Never framed: a framed sign-out button could be clicked through an overlay.
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}
ROLES = {"admin": ("管理员", "Administrator"), "user": ("成员", "Member")}


def _static_url(name: str) -> str:
    """A static file's address, versioned by its content, so a browser never mixes a new page
    with an old stylesheet or script from its cache."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC)


@pass_context
def local_time(context: Context, moment: datetime | None) -> Markup:
    """A UTC time as the member reads it: in the service's time zone (`IDENTITY_TIME_ZONE`),
    minutes precision, with the UTC offset, never broken across lines."""
    if moment is None:
        return Markup("—")
    zone = time_zone(context["request"])
    local = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)
    offset = local.strftime("%z")
    return Markup(
        '<time class="token" datetime="{}">{} <span class="muted">UTC{}:{}</span></time>'
    ).format(local.isoformat(timespec="seconds"), f"{local:%Y-%m-%d %H:%M}", offset[:3], offset[3:])


def role_words(role: str | None) -> Markup:
    """`admin` / `user` as words, in both languages; an unknown role as it came."""
    zh, en = ROLES.get(role or "", (role or "—", ""))
    return Markup("{}{}").format(zh, Markup(' <span class="en">{}</span>').format(en) if en else "")


templates = Jinja2Templates(directory=TEMPLATE_DIRS)
templates.env.globals["stylesheet"] = _static_url("identity.css")
templates.env.globals["menu_script"] = _static_url("menu.js")  # the console's account menu
templates.env.filters["local_time"] = local_time
templates.env.filters["role_words"] = role_words


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The page, with the ISV's brand (`branding.Brand`, the default one in an app without)."""
    context.setdefault("brand", getattr(request.app.state, "brand", DEFAULT_BRAND))
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(PAGE_HEADERS)
    return response


DEFAULT_BRAND = Brand()
brand_router = APIRouter(include_in_schema=False)


@brand_router.get("/brand/{name}")
async def brand_file(request: Request, name: str) -> Response:
    """The logo or the accent's stylesheet, at the address the pages name (any other: 404)."""
    brand: Brand = getattr(request.app.state, "brand", DEFAULT_BRAND)
    logo_url, theme_url = brand.logo_url, brand.theme_url
    if brand.logo is not None and logo_url and name == logo_url.removeprefix("/brand/"):
        headers = {"Cache-Control": IMMUTABLE, "Content-Security-Policy": LOGO_POLICY}
        return Response(brand.logo, media_type=logo_type(brand.logo), headers=headers)
    if brand.theme is not None and theme_url and name == theme_url.removeprefix("/brand/"):
        return Response(brand.theme, media_type="text/css", headers={"Cache-Control": IMMUTABLE})
    return Response(status_code=404)
