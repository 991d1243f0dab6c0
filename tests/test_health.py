"""Probes and metrics, as an operator's monitoring sees them."""

from __future__ import annotations

import httpx2 as httpx

from tests.marketplace_client import Sender


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok"}


async def test_metrics_count_calls_by_interface_and_result(
    client: httpx.AsyncClient, marketplace: Sender
) -> None:
    await marketplace.basic({"activity": "queryInstance", "instanceId": "nope"})
    await marketplace.kit("authSync", {"bad": True}, signature="0" * 64)
    text = (await client.get("/metrics")).text
    assert (
        'identity_marketplace_calls_total{interface="queryInstance",result_code="000003"} 1.0'
        in text
    )
    assert 'identity_marketplace_calls_total{interface="authSync",result_code="000001"} 1.0' in text
    assert "identity_marketplace_call_seconds_count" in text
