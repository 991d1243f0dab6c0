from tests.marketplace_client import Sender


async def test_new_instance_then_tenant_sync(marketplace: Sender) -> None:
    r = await marketplace.basic(
        {"activity": "newInstance", "orderId": "O1", "orderLineId": "O1-1", "businessId": "b1"}
    )
    assert r["resultCode"] == "000000", r
    r2 = await marketplace.basic(
        {"activity": "newInstance", "orderId": "O1", "orderLineId": "O1-1", "businessId": "b2"}
    )
    assert r2["instanceId"] == r["instanceId"]
    t = await marketplace.kit(
        "tenantSync",
        {
            "instanceId": r["instanceId"],
            "orderId": "O1",
            "tenantId": "T1",
            "tenantCode": "acme",
            "name": "Acme",
            "domainName": "https://acme.example.com",
            "flag": 1,
            "testFlag": 0,
            "timeStamp": "20220413093539534",
        },
    )
    assert t == {"resultCode": "000000", "resultMsg": "success."}
