"""The mixed traffic of `benchmarks.load`: one loop per kind of request, all at once.

Members move between two queues so that no two loops touch one member at a time: `free` holds
members signed in nowhere; a `login` loop takes one, signs them in through the simulator (Flow
B: `/sso/login` → the auth centre's authorize and login form → `/sso/callback` → the session),
then takes them through the provider's code flow at the registered client (`code_flow`), and
puts the resulting `Holder` (browser, tokens, sid) in `holders`. `introspect` and `refresh`
borrow a holder and give it back; `logout` (POST `/sso/logout`) and `deprovision` (authSync
flag 2 with `enable:"false"`, then `reenable` with `enable:"true"`) end the holder's session,
which owes the client a back-channel logout for its sid, and return the member to `free`.
`validate` checks recent access tokens offline with identity.client, `authsync` re-sends the
500 members of the sync pool (flag 2, a new name each round), `admin_members` pages through
`/api/admin/members` as the tenant's admin.

A failed operation counts as an error of its kind; the member it held is dropped (its state is
unknown), and its first messages are kept for the report.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from identity.client import TokenValidator
from identity.simulator.scenario import MemberSpec, TenantSpec
from identity.simulator.sender import user_object
from tests.helpers.oidc_app import App, tokens_for
from tests.helpers.stack import Browser, Stack

TENANT = "acme"


@dataclass
class Stat:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


@dataclass
class Holder:
    """A member signed in at identity, holding the client's tokens from that session."""

    name: str
    browser: Browser
    tokens: dict[str, str]
    sid: str


async def auth_sync(stack: Stack, members: Sequence[MemberSpec], *, enable: bool | None) -> None:
    """authSync flag 2 (update) of `members`, signed by the simulator's sender; raises
    `Refused` unless identity answers `000000`."""
    tenant = stack.tenant(TENANT)
    sender = stack.sender
    body = {
        "instanceId": await sender.instance_id(tenant),
        "tenantId": tenant.tenant_id,
        "appId": sender.app_id,
        "userList": [user_object(m, enable=enable) for m in members],
        "currentSyncTime": sender.sync_time(),
        "flag": 2,
        "testFlag": 0,
        "timeStamp": sender.sync_time(),
    }
    await sender.kit("authSync", body)


@dataclass
class Workload:
    stack: Stack
    app: App
    validator: TokenValidator
    admin: Browser
    logins: list[str]
    sync_pool: list[MemberSpec]
    deadline: float
    stats: dict[str, Stat] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    ended_sids: set[str] = field(default_factory=set)
    free: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    holders: asyncio.Queue[Holder] = field(default_factory=asyncio.Queue)
    recent_tokens: deque[str] = field(default_factory=lambda: deque(maxlen=64))

    def __post_init__(self) -> None:
        for name in self.logins:
            self.free.put_nowait(name)

    @property
    def tenant(self) -> TenantSpec:
        return self.stack.tenant(TENANT)

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    @asynccontextmanager
    async def timed(self, kind: str) -> AsyncIterator[None]:
        stat = self.stats.setdefault(kind, Stat())
        start = time.perf_counter()
        try:
            yield
        except Exception as exc:
            stat.errors += 1
            if len(self.failures) < 20:
                self.failures.append(f"{kind}: {type(exc).__name__}: {str(exc)[:300]}")
            raise
        stat.latencies.append(time.perf_counter() - start)

    async def run(self) -> None:
        loops: list[tuple[Callable[[], Awaitable[None]], int, float]] = [
            (self.login, 3, 0.0),
            (self.introspect, 1, 0.05),
            (self.refresh, 1, 0.1),
            (self.validate, 1, 0.05),
            (self.admin_members, 1, 0.2),
            (self.logout, 1, 0.2),
            (self.deprovision, 1, 2.0),
            (self.authsync, 1, 2.0),
        ]
        await asyncio.gather(*(self.loop(op, pause) for op, n, pause in loops for _ in range(n)))

    async def loop(self, op: Callable[[], Awaitable[None]], pause: float) -> None:
        while self.running():
            with suppress(Exception):  # counted by `timed`
                await op()
            await asyncio.sleep(pause)

    async def take(self) -> Holder | None:
        try:
            return await asyncio.wait_for(self.holders.get(), timeout=1)
        except TimeoutError:
            return None

    async def drop(self, holder: Holder) -> None:
        await holder.browser.close()

    # --- the kinds --------------------------------------------------------------------------

    async def login(self) -> None:
        try:
            name = await asyncio.wait_for(self.free.get(), timeout=1)
        except TimeoutError:
            return
        browser = self.stack.browser()
        try:
            async with self.timed("login"):
                landed = await browser.flow_b(TENANT, f"{name}@{TENANT}", f"{name}-pw")
                assert landed.status_code == 200, (landed.status_code, landed.text[:200])
                session = await browser.session()
                assert session.status_code == 200, session.text[:200]
            async with self.timed("code_flow"):
                tokens = await tokens_for(self.app, browser, account=f"{name}@{TENANT}")
            claims = await self.validator.validate_access_token(tokens["access_token"])
        except Exception:
            await browser.close()
            raise
        self.recent_tokens.append(tokens["access_token"])
        self.holders.put_nowait(Holder(name, browser, tokens, str(claims["sid"])))

    async def introspect(self) -> None:
        if (holder := await self.take()) is None:
            return
        try:
            async with self.timed("introspect"):
                answer = await self.app.post(
                    "introspection_endpoint", token=holder.tokens["access_token"]
                )
                assert answer.status_code == 200 and answer.json()["active"], answer.text
        except Exception:
            await self.drop(holder)
            raise
        self.holders.put_nowait(holder)

    async def refresh(self) -> None:
        if (holder := await self.take()) is None:
            return
        try:
            async with self.timed("refresh"):
                answer = await self.app.post(
                    "token_endpoint",
                    grant_type="refresh_token",
                    refresh_token=holder.tokens["refresh_token"],
                )
                assert answer.status_code == 200, answer.text
        except Exception:
            await self.drop(holder)
            raise
        holder.tokens = answer.json()
        self.recent_tokens.append(holder.tokens["access_token"])
        self.holders.put_nowait(holder)

    async def validate(self) -> None:
        """Offline: 20 access tokens checked by identity.client against its cached keys."""
        if not self.recent_tokens:
            return
        for token in random.choices(self.recent_tokens, k=20):
            async with self.timed("validate"):
                claims = await self.validator.validate_access_token(token)
                assert claims["tenant_code"] == TENANT, claims

    async def admin_members(self) -> None:
        cursor: str | None = None
        for _ in range(3):  # the first pages of the list, following the cursor
            params: dict[str, Any] = {"limit": 50} | ({"cursor": cursor} if cursor else {})
            async with self.timed("admin_members"):
                answer = await self.admin.http.get(
                    self.stack.identity + "/api/admin/members", params=params
                )
                assert answer.status_code == 200, answer.text[:300]
                page = answer.json()
                assert len(page["items"]) == 50, len(page["items"])
            cursor = page.get("nextCursor")
            if not cursor:
                return

    async def logout(self) -> None:
        if (holder := await self.take()) is None:
            return
        try:
            async with self.timed("logout"):
                csrf = (await holder.browser.session()).json()["csrfToken"]
                answer = await holder.browser.http.post(
                    self.stack.identity + "/sso/logout", headers={"X-CSRF-Token": csrf}
                )
                assert answer.status_code == 303, answer.text[:300]
                self.ended_sids.add(holder.sid)
        finally:
            await self.drop(holder)
        self.free.put_nowait(holder.name)

    async def deprovision(self) -> None:
        if (holder := await self.take()) is None:
            return
        await self.drop(holder)
        member = self.tenant.member(holder.name)
        async with self.timed("deprovision"):
            await auth_sync(self.stack, [member], enable=False)
            self.ended_sids.add(holder.sid)
        async with self.timed("reenable"):
            await auth_sync(self.stack, [member], enable=True)
        self.free.put_nowait(holder.name)

    async def authsync(self) -> None:
        round_ = len(self.stats.get("authsync", Stat()).latencies)
        members = [m.model_copy(update={"name": f"{m.name} r{round_}"}) for m in self.sync_pool]
        async with self.timed("authsync"):
            await auth_sync(self.stack, members, enable=None)
