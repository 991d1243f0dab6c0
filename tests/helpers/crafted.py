"""Crafted request values for the property tests of tests/test_crafted_input.py, and what each
surface's answer must look like whatever it was sent.

Values are raw octets, percent-encoded on the wire, so a query or a form can carry what no
browser sends: control characters (NUL above all), invalid UTF-8 (a lone surrogate's encoding,
an overlong NUL), digits that `str.isdigit()` accepts and `int()` refuses (`²`, `٣`), numbers
past every range, very long strings, base64url cursors that decode to any of these, JWT-shaped
tokens with hostile headers, and repeated or missing parameters.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote_from_bytes

import httpx2 as httpx
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.helpers.stack import refusal_reason

Change = tuple[bytes, str, bytes]
"""A parameter's name, how it changes (one of MODES), and the crafted octets."""
Pairs = list[tuple[bytes, bytes]]

SETTINGS = hsettings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one signed-in world serves every example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def examples(count: int) -> hsettings:
    """`SETTINGS` with `count` examples a run."""
    return hsettings(SETTINGS, max_examples=count)


SAMPLES = [
    "\x00", "a\x00b", "\x01", "\x08", "\x1b[2J", "\x7f", "\t", "\n", "\r\n", "\x85", "\u2028",
    "\ufeff", "\u202e", "\ufffd", "²", "٣", "１", "𝟙", "Ⅻ", "¹²", "-1", "0", "-0", "+1", " 1",
    "1 ", "1.5", "1e9", "1_0", "0x1f", "NaN", "99999999999999", "999999999999", str(2**31),
    str(2**63), str(2**64), "9" * 40, "-" + "9" * 40, "", " ", "%", "%00", "%zz", "null", "[]",
    "{}", "'", '"', "\\", "<b>", "../..", "@", "a@b@c", "bob@beta", "none", "login",
]  # fmt: skip
RAW = [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"a\xfeb", b"\xe2\x82", b"\x00\xff"]
MODES = ("replace", "append", "prepend", "repeat", "drop")


def b64url(octets: bytes) -> bytes:
    return base64.urlsafe_b64encode(octets).rstrip(b"=")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8 octets


_characters = st.characters(categories=["Cc", "Cs", "Cf", "N", "L", "P", "S", "Z"])
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(_characters, max_size=8)
)
_jwt_headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["RS256", "ES256", "PS256", "HS256", "none"]) | _scalars},
    optional={
        "kid": _scalars,
        "typ": st.sampled_from(["JWT", "at+jwt", "logout+jwt"]) | _scalars,
        "jwk": _scalars,
        "crit": _scalars,
    },
)
_jwt_claims = st.dictionaries(
    st.sampled_from(["iss", "aud", "sub", "sid", "iat", "exp", "gid", "client_id", "events"]),
    _scalars,
    max_size=5,
)
jwt_like = st.builds(
    lambda header, claims, signature: b".".join(
        [b64url(json.dumps(part).encode()) for part in (header, claims)] + [b64url(signature)]
    ),
    _jwt_headers,
    _jwt_claims,
    st.binary(max_size=8),
)
numbers = st.one_of(
    st.integers(-(10**40), 10**40),
    st.sampled_from([10**12, 10**14, 2**63, 2**64, -(2**63) - 1]),
).map(lambda n: str(n).encode())
long_values = st.just(b"9" * 4301) | st.builds(  # 4301 digits: past int()'s limit
    lambda unit, times: unit * times,
    st.sampled_from([b"9", b"x", _utf8("²"), b"\x00", b"%"]),
    st.sampled_from([64, 65, 255, 256, 2048, 2049]) | st.integers(1, 2049),
)
"""Long values, short enough that four of them stay within the server's 64 KiB request head."""
plain = st.one_of(
    st.sampled_from(SAMPLES).map(_utf8),
    st.sampled_from(RAW),
    numbers,
    st.text(_characters, max_size=24).map(_utf8),
    st.binary(max_size=16),
)
crafted = st.one_of(plain, long_values, plain.map(b64url), jwt_like)
"""Any crafted value; `plain.map(b64url)` makes cursors that decode to the others."""


def changes(*names: str) -> st.SearchStrategy[list[Change]]:
    """One to three changes to the named parameters, now and then to a crafted name."""
    name = st.sampled_from([n.encode() for n in names] + [b"x\x00", b"\xff", _utf8("²")])
    return st.lists(st.tuples(name, st.sampled_from(MODES), crafted), min_size=1, max_size=3)


def change(name: str, value: str | bytes, how: str = "replace") -> list[Change]:
    """One change, for the explicit examples."""
    return [(name.encode(), how, value if isinstance(value, bytes) else _utf8(value))]


def apply(base: dict[str, str], made: Iterable[Change]) -> Pairs:
    """The base parameters with the changes made: replaced, appended to, prepended to, repeated
    (the original kept) or dropped."""
    pairs = [(k.encode(), v.encode()) for k, v in base.items()]
    for name, how, value in made:
        old = next((v for k, v in pairs if k == name), b"")
        new = {"append": old + value, "prepend": value + old}.get(how, value)
        if how != "repeat":
            pairs = [(k, v) for k, v in pairs if k != name]
        if how != "drop":
            pairs.append((name, new))
    return pairs


def value(pairs: Pairs, name: str, default: bytes = b"") -> bytes:
    """The last value sent under `name`."""
    return next((v for k, v in reversed(pairs) if k == name.encode()), default)


def encoded(pairs: Pairs) -> str:
    return "&".join(
        f"{quote_from_bytes(k, safe='')}={quote_from_bytes(v, safe='')}" for k, v in pairs
    )


def form_body(pairs: Pairs, raw: bool) -> bytes:
    """URL-encoded, or the octets as they are (`raw`: what a careless client sends)."""
    if raw:
        return b"&".join(k + b"=" + v for k, v in pairs)
    return encoded(pairs).encode()


def segment(octets: bytes) -> str:
    """A path segment carrying the octets (never empty, no `/`: routing is not under test)."""
    return quote_from_bytes(octets.replace(b"/", b"") or b"-", safe="").replace(".", "%2E")


def text(octets: bytes) -> str:
    """The octets as a str for JSON, invalid UTF-8 kept as lone surrogates."""
    return octets.decode("utf-8", "surrogateescape")


async def post_form(
    http: httpx.AsyncClient, url: str, pairs: Pairs, raw: bool = False, **headers: str
) -> httpx.Response:
    headers["content-type"] = "application/x-www-form-urlencoded"
    return await http.post(url, content=form_body(pairs, raw), headers=headers)


# --- what each surface answers ------------------------------------------------------------


def _compact(sent: str) -> str:
    """Long runs of one character written as `x*4301`, then the first 800 characters."""
    return re.sub(r"(.)\1{39,}", lambda m: f"{m.group(1)}*{len(m.group(0))}", sent)[:800]


def seen(r: httpx.Response) -> str:
    """The exchange, for a failure message: enough to send the request again by hand."""
    auth = r.request.headers.get("authorization")
    sent = f"{r.request.method} {_compact(r.request.url.raw_path.decode())}"
    if r.request.content:
        sent += f" body={_compact(repr(r.request.content))}"
    if auth:
        sent += f" authorization={auth[:200]!r}"
    answer = f"{r.status_code} {r.headers.get('content-type')} {r.text[:300]!r}"
    return f"answered {answer} to {sent}"


def _json(r: httpx.Response) -> object:
    try:
        return r.json()
    except ValueError:
        return None


def _html(r: httpx.Response) -> bool:
    return r.headers.get("content-type", "").startswith("text/html")


def no_server_error(r: httpx.Response) -> None:
    assert r.status_code < 500, seen(r)


def oauth_answer(r: httpx.Response) -> None:
    """RFC 6749 §5.2: an error is JSON `{"error", "error_description"}`."""
    no_server_error(r)
    if r.status_code >= 400:
        body = _json(r)
        assert isinstance(body, dict), seen(r)
        assert isinstance(body.get("error"), str), seen(r)
        assert isinstance(body.get("error_description"), str), seen(r)


def page_or_redirect(r: httpx.Response) -> None:
    """A browser surface: a redirect somewhere, or an HTML page (the refusal in it)."""
    no_server_error(r)
    if 300 <= r.status_code < 400:
        assert r.headers.get("location"), seen(r)
    elif r.status_code >= 400:
        assert _html(r) and "location" not in r.headers, seen(r)


def admin_answer(r: httpx.Response) -> None:
    """The admin API's refusal: JSON `{"error", "message"}`."""
    no_server_error(r)
    if r.status_code >= 400:
        body = _json(r)
        assert isinstance(body, dict), seen(r)
        assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), seen(r)


UPSTREAM_FAILURES = {"upstream_timeout", "upstream_error", "upstream_unavailable", "client_invalid"}
"""/sso refusals that are 5xx by design: the auth centre failed, not identity."""


def sso_answer(r: httpx.Response) -> None:
    """/sso: a redirect, a page, or the refusal page naming its reason."""
    if r.status_code >= 400:
        reason = refusal_reason(r)
        assert _html(r) and reason is not None, seen(r)
        assert r.status_code < 500 or reason in UPSTREAM_FAILURES, seen(r)
    elif r.status_code >= 300:
        assert r.headers.get("location"), seen(r)
