"""Probes and metrics, as an operator's monitoring sees them."""

from __future__ import annotations

import asyncio
import re
import sqlite3

import httpx2 as httpx
import pytest

from identity.marketplace import service
from tests.helpers.marketplace_client import SignedCalls
from tests.helpers.servers import METRICS_AUTH


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok"}


async def test_metrics_count_calls_by_interface_and_result(
    client: httpx.AsyncClient, marketplace: SignedCalls
) -> None:
    await marketplace.basic({"activity": "queryInstance", "instanceId": "nope"})
    await marketplace.kit("authSync", {"bad": True}, signature="0" * 64)
    text = (await client.get("/metrics", headers=METRICS_AUTH)).text
    assert (
        'identity_marketplace_calls_total{interface="queryInstance",result_code="000003"} 1.0'
        in text
    )
    assert 'identity_marketplace_calls_total{interface="authSync",result_code="000001"} 1.0' in text
    assert "identity_marketplace_call_seconds_count" in text


KNOWN_INTERFACES = set(service.KIT) | set(service.BASIC) | {"unknown"}


async def interface_labels(client: httpx.AsyncClient) -> set[str]:
    """Every interface label value on /metrics, checking that none is outside the known set."""
    text = (await client.get("/metrics", headers=METRICS_AUTH)).text
    labels = set(re.findall(r'interface="([^"]*)"', text))
    assert labels <= KNOWN_INTERFACES, labels - KNOWN_INTERFACES
    return labels


async def test_unsigned_junk_adds_no_label_values(client: httpx.AsyncClient) -> None:
    for i in range(50):
        await client.post(f"/koogallery/produceAPI/v2/junk{i}", content=b"junk")
    await interface_labels(client)
    assert "junk" not in (await client.get("/metrics", headers=METRICS_AUTH)).text


async def test_an_unknown_activity_is_labelled_unknown(
    client: httpx.AsyncClient, marketplace: SignedCalls
) -> None:
    for i in range(20):
        assert (await marketplace.basic({"activity": f"zzz{i}"}))["resultCode"] == "000002"
    assert "unknown" in await interface_labels(client)
    assert "zzz" not in (await client.get("/metrics", headers=METRICS_AUTH)).text


async def test_readiness_does_not_queue_behind_a_writer(
    client: httpx.AsyncClient, database_url: str, is_postgres: bool
) -> None:
    """On SQLite a long sync holds the write lock; probes must still answer at once."""
    if is_postgres:
        pytest.skip("PostgreSQL readers never wait for writers")
    writer = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        response = await asyncio.wait_for(client.get("/readyz"), timeout=5)
        assert response.status_code == 200
    finally:
        writer.execute("ROLLBACK")
        writer.close()
