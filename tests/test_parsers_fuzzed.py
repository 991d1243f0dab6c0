"""The parsers hostile input meets first, fuzzed one by one with Hypothesis (bounded, derandomized)
and with atheris (coverage-guided, tests/helpers/fuzz_targets.py, a fixed number of runs from a
fixed seed): the marketplace's body parser and signature canonicaliser, its models' parsing (the
string forms of `orgInfoList` and `userList` above all), the form reader, and the admin API's
cursor decoder. Whatever they are given, they answer or raise their documented error, nothing
else; over HTTP the same bodies are never a 500.

The HTTP surfaces themselves are fuzzed with crafted parameters in tests/test_crafted_input.py
and tests/test_robustness.py, and against the OpenAPI document in tests/test_schemathesis.py;
this file goes below them, where a generated value reaches the parser whole.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from starlette.requests import Request

from identity.admin.errors import BadRequest
from identity.admin.service import decode_cursor, encode_cursor
from identity.app import create_app
from identity.errors import InvalidParameter, SignatureError
from identity.marketplace import schemas, signing
from identity.marketplace.signing import Kind
from identity.settings import Settings
from identity.web import CONTROL, URLENCODED, FormRefused, read_form

BOUNDED = hsettings(
    max_examples=300, derandomize=True, deadline=None, database=None,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
KEYS = ["current-key", "previous-key"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
JSONISH = [
    b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e999}', b'{"a": "\\ud800"}', b'{"a": "\\udfff"}',
    b'{"a": 1, "a": 2}', b"[" * 5000, b'{"a":' * 5000, b"\xef\xbb\xbf{}", b'{"a": "\xff"}',
    b"9" * 5000, b'{"a": ' + b"9" * 5000 + b"}", b'{"\\u0000": null}', b"{}" + b"\x00",
]  # fmt: skip
bodies = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(JSONISH),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.tuples(
        json_values.map(json.dumps), st.integers(0, 64), st.binary(min_size=1, max_size=4)
    ).map(lambda t: t[0].encode()[: t[1]] + t[2] + t[0].encode()[t[1] :]),
)
"""Bytes, JSON documents, the JSON a strict parser refuses, and JSON with bytes spliced in."""


# --- the marketplace: the body parser and the signature canonicaliser ----------------------


@BOUNDED
@given(body=bodies)
def test_any_body_parses_to_an_object_or_none_and_signs(body: bytes) -> None:
    document = signing.parse_object(body)
    assert document is None or isinstance(document, dict)
    for kind in Kind:
        assert len(signing.sign_body(kind, KEYS[0], "n" * 16, "1" * 13, body)) == 64
    if document is not None:  # the canonical form is a fixed point, so it verifies either way
        canonical = signing.canonical_payload(document).encode()
        assert signing.parse_object(canonical) is not None
        assert signing.canonical_payload(signing.parse_object(canonical) or {}).encode() == (
            canonical
        )


texts = st.none() | st.text(max_size=70) | st.sampled_from(["1" * 13, "²" * 13, "n" * 16])


@BOUNDED
@given(body=bodies, signature=texts, timestamp=texts, nonce=texts, kind=st.sampled_from(Kind))
@example(body=b"{}", signature="x", timestamp="٣" * 13, nonce="n" * 16, kind=Kind.KIT)
def test_verify_raises_only_the_marketplace_errors(
    body: bytes, signature: str | None, timestamp: str | None, nonce: str | None, kind: Kind
) -> None:
    now = 1_765_000_000_000
    try:
        signing.verify(kind, KEYS, signature=signature, timestamp=timestamp, nonce=nonce,
                       body=body, now_ms=now, window_ms=300_000)  # fmt: skip
    except (InvalidParameter, SignatureError):
        return


@BOUNDED
@given(body=bodies, kind=st.sampled_from(Kind))
def test_a_body_signed_as_the_marketplace_does_verifies(body: bytes, kind: Kind) -> None:
    timestamp, nonce = "1765000000000", "n" * 16
    signature = signing.sign_body(kind, KEYS[1], nonce, timestamp, body)
    verified = signing.verify(kind, KEYS, signature=signature, timestamp=timestamp, nonce=nonce,
                              body=body, now_ms=int(timestamp), window_ms=1)  # fmt: skip
    assert verified.key_index == 1


MODELS = [schemas.TenantSync, schemas.ApplicationSync, schemas.AuthSync, schemas.SingleOrgSync,
          schemas.AllOrgSync, schemas.NewInstance, schemas.QueryInstance,
          schemas.RefreshInstance, schemas.UpdateInstanceStatus, schemas.ReleaseInstance,
          schemas.UpgradeInstance]  # fmt: skip
FIELDS = ["instanceId", "tenantId", "tenantCode", "appId", "flag", "testFlag", "userList",
          "orgInfoList", "orgInfo", "orgCode", "parentCode", "currentSyncTime", "domainName",
          "orderId", "orderLineId", "businessId", "expireTime", "scene", "status", "userName",
          "role", "enable", "productId"]  # fmt: skip
LISTISH = ['[{orgCode:"1",orgName:"a"}]', "[{orgCode:'1'}]", "[{orgCode:1,}]", "[" * 3000,
           '[{orgCode:"' + "x" * 2000 + '"}]', "[{a:1}" + "," * 1100 + "]", "{}", "null",
           "[{orgCode: /* c */ '1'}]", '[{"orgCode": "\\ud800"}]', "'\\x00'", "0x1f", "[1e999]",
           "[" + "{orgCode:1}," * 200 + "]"]  # fmt: skip
string_forms = st.sampled_from(LISTISH) | json_values.map(json.dumps) | st.text(max_size=40)


@BOUNDED
@given(
    model=st.sampled_from(MODELS),
    data=st.dictionaries(st.sampled_from(FIELDS), json_values | string_forms, max_size=8)
    | json_values,
)
def test_the_models_raise_only_invalid_parameter(model: type[Any], data: Any) -> None:
    try:
        schemas.parse(model, data)
    except InvalidParameter as exc:
        assert exc.message


@BOUNDED
@given(value=string_forms, name=st.sampled_from(["orgInfoList", "orgInfo"]))
def test_the_org_list_string_forms_raise_only_invalid_parameter(value: str, name: str) -> None:
    data = {"instanceId": "I-1", name: value, "timeStamp": "20260101000000000"}
    try:
        schemas.parse(schemas.AllOrgSync, data)
    except InvalidParameter as exc:
        assert exc.message


# --- the form reader -----------------------------------------------------------------------

content_types = st.sampled_from(
    [URLENCODED, f"{URLENCODED}; charset=utf-8", "APPLICATION/X-WWW-FORM-URLENCODED", "",
     "multipart/form-data", "text/plain", "application/json", f" {URLENCODED} ;;"]
) | st.text(max_size=20)  # fmt: skip
lengths = st.none() | st.sampled_from(["0", "²", "٣", "9" * 5000, "-1", " 5", "1e3", "99999"])
form_bodies = st.one_of(
    st.binary(max_size=80),
    st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=20).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    ),
    st.sampled_from([b"a=1&a=2", b"%00=1", b"a=%00", b"a=%ff", b"&" * 40, b"=" * 40, b"%", b";"]),
)


def _request(body: bytes, content_type: str, length: str | None, chunks: int) -> Request:
    headers = [(b"content-type", content_type.encode("utf-8", "surrogateescape"))]
    if length is not None:
        headers.append((b"content-length", length.encode()))
    step = max(1, len(body) // max(chunks, 1))
    parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    return Request(scope, receive)


@BOUNDED
@given(
    body=form_bodies,
    content_type=content_types,
    length=lengths,
    chunks=st.integers(1, 4),
    max_bytes=st.sampled_from([16, 64, 16 * 1024]),
    free=st.booleans(),
)
@example(body=b"", content_type=URLENCODED, length="²", chunks=1, max_bytes=64, free=False)
@example(body=b"", content_type=URLENCODED, length="9" * 5000, chunks=1, max_bytes=64, free=False)
def test_the_form_reader_raises_only_form_refused(
    body: bytes, content_type: str, length: str | None, chunks: int, max_bytes: int, free: bool
) -> None:
    request = _request(body, content_type, length, chunks)
    names = frozenset({"password"}) if free else frozenset()
    try:
        form = asyncio.run(read_form(request, max_bytes=max_bytes, max_fields=8, free=names))
    except FormRefused as exc:
        assert exc.message
        return
    assert len(form) <= 8 and len(body) <= max_bytes
    assert not any(CONTROL.search(k + (v if k not in names else "")) for k, v in form.items())


# --- the admin API's cursor ----------------------------------------------------------------


def b64url(octets: bytes) -> str:
    return base64.urlsafe_b64encode(octets).decode().rstrip("=")


@BOUNDED
@given(cursor=st.text(max_size=40) | st.binary(max_size=30).map(b64url))
@example(cursor=b64url("²".encode()))
@example(cursor="YQ")
def test_a_cursor_decodes_or_is_a_bad_request(cursor: str) -> None:
    try:
        decoded = decode_cursor(cursor)
    except BadRequest as exc:
        assert exc.message
        return
    assert not CONTROL.search(decoded)


@BOUNDED
@given(name=st.text(max_size=64).filter(lambda n: not CONTROL.search(n)))
def test_a_cursor_this_api_gave_decodes_to_its_name(name: str) -> None:
    assert decode_cursor(encode_cursor(name)) == name


# --- the same bodies over HTTP -------------------------------------------------------------

HTTP_EXAMPLES = hsettings(BOUNDED, max_examples=200)
FORM_ROUTES = ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke", "/oauth2/logout",
               "/login", "/login/change", "/login/app", "/sso/logout",
               "/admin/members/bob/end-sessions"]  # fmt: skip


def test_no_body_sent_to_a_form_is_a_server_error(settings: Settings) -> None:
    """Every route that reads a form, sent the generated bodies and types (`Content-Length` as
    the transport computes it: the form reader's own test covers a forged one)."""
    loop = asyncio.new_event_loop()
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="https://identity.example.com")

    @HTTP_EXAMPLES
    @given(
        route=st.sampled_from(FORM_ROUTES), body=form_bodies | bodies, content_type=content_types
    )
    def check(route: str, body: bytes, content_type: str) -> None:
        headers = {b"content-type": content_type.encode("utf-8", "surrogateescape")}
        answer = loop.run_until_complete(client.post(route, content=body, headers=headers))
        assert answer.status_code < 500, (route, body, content_type, answer.text[:300])

    try:
        check()
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(app.state.db.dispose())
        loop.close()


# --- coverage-guided: atheris --------------------------------------------------------------

ATHERIS_RUNS = 30_000


@pytest.mark.parametrize("target", ["marketplace_body", "form", "cursor"])
def test_atheris_finds_no_escaping_exception(target: str, tmp_path: Path) -> None:
    """tests/helpers/fuzz_targets.py under libFuzzer, `ATHERIS_RUNS` inputs from a fixed seed
    with the parsers' special tokens as its dictionary; a crash leaves its input in tmp_path."""
    helpers = Path(__file__).parent / "helpers"
    command = [sys.executable, "-m", "tests.helpers.fuzz_targets", target,
               f"-runs={ATHERIS_RUNS}", "-seed=1", f"-dict={helpers / 'fuzz.dict'}",
               f"-artifact_prefix={tmp_path}/"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(helpers.parent.parent)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Done {ATHERIS_RUNS} runs" in done.stderr, done.stderr[-3000:]
