"""Login end to end: identity and the simulator as separate processes over real HTTP."""

from __future__ import annotations

from sqlalchemy import func, select

from identity.db import Database
from identity.models import Member
from identity.models import Session as MemberSession
from tests.stack import Browser, Stack


async def _sessions(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(MemberSession)) or 0)


async def test_flow_b_signs_the_member_in_and_describes_them(
    acme: Stack, browser: Browser, db: Database
) -> None:
    landed = await browser.flow_b("acme", "alice@acme", "alice-pw", next="/sso/me?tab=1")
    assert landed.status_code == 200, landed.text
    assert str(landed.url) == acme.identity + "/sso/me?tab=1"
    assert "Alice 爱丽丝" in landed.text
    described = (await browser.session()).json()
    assert described["tenantId"] == "t-acme-0001"
    assert described["tenantCode"] == "acme"
    assert described["userName"] == "alice"
    assert described["role"] == "admin"
    assert described["orgCode"] == "acme"
    assert described["appId"] == acme.scenario.app_id
    assert await _sessions(db) == 1
    async with db.read() as session:
        huawei_id = await session.scalar(
            select(Member.huawei_user_id).where(Member.user_name == "alice")
        )
    assert huawei_id  # recorded the first time the member is seen (§5.2 step 7)


async def test_flow_a_signs_the_member_in_without_state(acme: Stack, browser: Browser) -> None:
    landed = await browser.flow_a("bob@acme", "bob-pw")
    assert landed.status_code == 200, landed.text
    assert str(landed.url) == acme.identity + "/sso/me"
    assert (await browser.session()).json()["userName"] == "bob"
