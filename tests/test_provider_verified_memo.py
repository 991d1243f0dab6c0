"""A token whose signature the key set verified once is not verified again
(identity.provider.keys.verified); what does not verify is never remembered, and the memory is
bounded. That a revoked key's tokens go inactive at once is in test_provider_flow.py."""

from __future__ import annotations

import httpx2 as httpx
import pytest
from httpx2 import ASGITransport

from identity.provider import keys, tokens


async def published_keys(client: httpx.AsyncClient) -> keys.Published:
    transport = client._transport
    assert isinstance(transport, ASGITransport)
    return await transport.app.state.provider.keys()  # type: ignore[attr-defined,no-any-return]


def signed(published: keys.Published, n: int) -> str:
    return tokens.logout_token(published, "https://identity.example.com", "app", f"sid-{n}", "s")


async def test_a_verified_token_is_remembered_and_a_forged_one_never(
    client: httpx.AsyncClient,
) -> None:
    published = await published_keys(client)
    token = signed(published, 1)
    first = keys.verified(published, token)
    assert first is not None and published.verified_tokens == {token: first}
    assert keys.verified(published, token) is first

    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[:-4]}AAAA"
    assert keys.verified(published, forged) is None
    assert keys.verified(published, "not.a.token") is None
    assert list(published.verified_tokens) == [token]


async def test_the_memory_keeps_the_newest_tokens_only(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "VERIFIED_KEPT", 2)
    published = await published_keys(client)
    made = [signed(published, n) for n in range(3)]
    for token in made:
        assert keys.verified(published, token) is not None
    assert list(published.verified_tokens) == made[1:]
