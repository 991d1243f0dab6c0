"""The ISV's brand on every page: a name, a logo and an accent colour (`IDENTITY_BRAND_*`).

An ISV deploys identity under its own name, so members see that name, not "identity". The
settings are checked at start (`check_*`, called by `identity.settings`): a name of at most 40
characters, a logo of at most 256 KiB that is a PNG or an SVG without scripts, an accent colour
`#rrggbb` white text stays legible on (WCAG's 4.5:1). Unset, pages look as they always have.

The logo and the accent are served by identity itself, at addresses that carry their content's
hash (`/brand/logo.<hash>.png`, `/brand/theme.<hash>.css`), so a browser may keep them for a
year and never shows an old logo after a change: the pages' policy allows no inline style, so
the colour comes as a stylesheet of one rule. An SVG logo is answered with a policy of its own
(no script, sandboxed), should anyone open its address directly.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_NAME = "identity"
DEFAULT_ACCENT = "#1f5eff"
MAX_NAME = 40
MAX_LOGO_BYTES = 256 * 1024
MIN_CONTRAST = 4.5
PNG = b"\x89PNG\r\n\x1a\n"
_HEX = re.compile(r"#[0-9a-fA-F]{6}")
_ACTIVE_SVG = re.compile(rb"<script|\bon[a-z]+\s*=|javascript:|<foreignObject", re.IGNORECASE)
_SVG = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!DOCTYPE[^>]*>\s*)?<svg\b", re.DOTALL)
IMMUTABLE = "public, max-age=31536000, immutable"
LOGO_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"


def check_name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise ValueError(f"must be 1 to {MAX_NAME} printable characters")
    return name


def check_accent(value: str) -> str:
    if not _HEX.fullmatch(value.strip()):
        raise ValueError("must be a colour as #rrggbb, such as #1f5eff")
    colour = value.strip().lower()
    contrast = 1.05 / (_luminance(colour) + 0.05)
    if contrast < MIN_CONTRAST:
        raise ValueError(
            f"{colour} is too light for the white text on its buttons (contrast "
            f"{contrast:.1f}:1, at least {MIN_CONTRAST}:1 is needed): choose a darker colour"
        )
    return colour


def check_logo(path: Path) -> Path:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path} cannot be read ({exc.strerror or exc})") from None
    if len(content) > MAX_LOGO_BYTES:
        raise ValueError(f"{path} is {len(content)} bytes; at most {MAX_LOGO_BYTES} are allowed")
    kind = logo_type(content)
    if kind is None:
        raise ValueError(f"{path} is neither a PNG nor an SVG image")
    if kind == "image/svg+xml" and _ACTIVE_SVG.search(content):
        raise ValueError(f"{path} holds script or event handlers; a logo must be a plain image")
    return path


def logo_type(content: bytes) -> str | None:
    if content.startswith(PNG):
        return "image/png"
    return "image/svg+xml" if _SVG.match(content) else None


def _luminance(colour: str) -> float:
    """WCAG 2's relative luminance of `#rrggbb`."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def _darker(colour: str, by: float = 0.2) -> str:
    """The hover shade of a button: the accent, a fifth darker."""
    r, g, b = (round(int(colour[i : i + 2], 16) * (1 - by)) for i in (1, 3, 5))
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass(frozen=True)
class Brand:
    """What the pages show of the ISV (`render` puts it in every page's context as `brand`)."""

    name: str = DEFAULT_NAME
    accent: str = DEFAULT_ACCENT
    logo: bytes | None = None

    @property
    def mark(self) -> str:
        """The letter in the badge shown when there is no logo."""
        return self.name[:1]

    @property
    def logo_url(self) -> str | None:
        if self.logo is None:
            return None
        kind = "svg" if logo_type(self.logo) == "image/svg+xml" else "png"
        return f"/brand/logo.{_digest(self.logo)}.{kind}"

    @property
    def theme(self) -> bytes | None:
        """The stylesheet of the accent colour; None for the default, which the pages' own
        stylesheet already has."""
        if self.accent == DEFAULT_ACCENT:
            return None
        return f":root{{--brand:{self.accent};--brand-dark:{_darker(self.accent)}}}\n".encode()

    @property
    def theme_url(self) -> str | None:
        return None if self.theme is None else f"/brand/theme.{_digest(self.theme)}.css"


def brand_of(name: str, accent: str, logo_file: Path | None) -> Brand:
    return Brand(name, accent, logo_file.read_bytes() if logo_file else None)


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:12]
