"""Coverage-guided fuzz targets (atheris, libFuzzer) for the parsers hostile input meets first:
`python -m tests.helpers.fuzz_targets <target> -runs=N [libFuzzer options]`. Each target feeds
the bytes libFuzzer makes to one parser and lets through only the errors it documents; anything
else escapes, and libFuzzer reports the input that raised it (and exits non-zero).

tests/test_parsers_fuzzed.py runs each a bounded number of times; a longer hunt is the same
command with more runs (or `-max_total_time=600`) and a corpus directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

import atheris

with atheris.instrument_imports(include=["identity"]):
    from starlette.requests import Request

    from identity.admin.errors import BadRequest
    from identity.admin.service import decode_cursor
    from identity.errors import InvalidParameter, SignatureError
    from identity.marketplace import schemas, signing
    from identity.web import FormRefused, read_form

KEYS = ["current-key", "previous-key"]
MODELS = [schemas.TenantSync, schemas.ApplicationSync, schemas.AuthSync, schemas.SingleOrgSync,
          schemas.AllOrgSync, schemas.NewInstance, schemas.QueryInstance,
          schemas.RefreshInstance, schemas.UpdateInstanceStatus, schemas.ReleaseInstance,
          schemas.UpgradeInstance]  # fmt: skip
LOOP = asyncio.new_event_loop()


def marketplace_body(data: bytes) -> None:
    """The signed body: parsed, canonicalised, verified, then read by one of the models."""
    fuzzed = atheris.FuzzedDataProvider(data)
    kind = signing.Kind.KIT if fuzzed.ConsumeBool() else signing.Kind.BASIC
    model = MODELS[fuzzed.ConsumeIntInRange(0, len(MODELS) - 1)]
    signature = fuzzed.ConsumeUnicodeNoSurrogates(70)
    body = fuzzed.ConsumeBytes(fuzzed.remaining_bytes())
    signing.sign_body(kind, KEYS[0], "n" * 16, "1765000000000", body)
    document = signing.parse_object(body)
    if document is not None:  # its canonical form is JSON again, which the marketplace signs
        assert signing.parse_object(signing.canonical_payload(document).encode()) is not None
    with contextlib.suppress(SignatureError):
        signing.verify(kind, KEYS, signature=signature, timestamp="1765000000000",
                       nonce="n" * 16, body=body, now_ms=1765000000000, window_ms=1)  # fmt: skip
    with contextlib.suppress(InvalidParameter):
        schemas.parse(model, document)


def form(data: bytes) -> None:
    """A posted form: its declared length, then its body in two chunks."""
    fuzzed = atheris.FuzzedDataProvider(data)
    length = fuzzed.ConsumeBytes(fuzzed.ConsumeIntInRange(0, 8))  # latin-1: b"\xb2" is "²"
    cut = fuzzed.ConsumeIntInRange(0, 64)
    body = fuzzed.ConsumeBytes(fuzzed.remaining_bytes())
    messages = [
        {"type": "http.request", "body": body[:cut], "more_body": True},
        {"type": "http.request", "body": body[cut:], "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    headers = [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", length)]
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)
    with contextlib.suppress(FormRefused):
        LOOP.run_until_complete(read_form(request, max_bytes=256, max_fields=8))


def cursor(data: bytes) -> None:
    with contextlib.suppress(BadRequest):
        decode_cursor(atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(96))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "marketplace_body": marketplace_body,
    "form": form,
    "cursor": cursor,
}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()
