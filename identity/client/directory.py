"""Reading a tenant's directory from identity (SCIM 2.0), for an app's backend.

`DirectoryReader` gets its own access token with the client-credentials grant (the client was
registered with `identity clients add … --directory`), keeps it until shortly before it
expires, and gets a new one when identity answers 401 (a token ends early when the client's
secret is rotated). `scim(tenant_id)` is a `scim2-client` client for the tenant's SCIM base,
its schemas discovered from identity once; `users` and `groups` walk a whole listing, page by
page. Standalone, like the rest of identity.client: no server code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from typing import Any

import httpx2 as httpx
from scim2_client.engines.httpx2 import AsyncSCIMClient
from scim2_models import Group, SearchRequest, User

from identity.client.errors import ProviderUnavailable, TokenRejected

DIRECTORY_SCOPE = "directory.read"
RENEW_BEFORE_SECONDS = 30
PAGE = 100


class _Bearer(httpx.Auth):
    """Adds the reader's token; on a 401, gets a new one and sends the request again, once."""

    def __init__(self, reader: DirectoryReader) -> None:
        self.reader = reader

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self.reader.token()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self.reader.token(renew=True)}"
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
        raise RuntimeError("DirectoryReader is asynchronous")


class DirectoryReader:
    """An app's backend reading its tenants' directories. `http` is the client it sends with
    (one of its own, closed by `aclose`, when not given)."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self._credentials = (client_id, client_secret)
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=10)
        self._token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()
        self._scim: dict[str, AsyncSCIMClient] = {}

    async def token(self, *, renew: bool = False) -> str:
        """A directory token, got again when it is about to expire or `renew` asks."""
        async with self._lock:
            if self._token and not renew and time.monotonic() < self._token[1]:
                return self._token[0]
            try:
                answer = await self.http.post(
                    f"{self.issuer}/oauth2/token",
                    data={"grant_type": "client_credentials", "scope": DIRECTORY_SCOPE},
                    auth=self._credentials,
                )
            except httpx.HTTPError as exc:
                raise ProviderUnavailable(f"the token endpoint: {type(exc).__name__}") from None
            if answer.status_code >= 500:
                raise ProviderUnavailable(f"the token endpoint answered {answer.status_code}")
            issued = answer.json() if answer.status_code == 200 else {}
            if "access_token" not in issued:
                raise TokenRejected("refused", answer.text[:200])
            lifetime = float(issued.get("expires_in", 300)) - RENEW_BEFORE_SECONDS
            self._token = (issued["access_token"], time.monotonic() + max(lifetime, 1))
            return str(issued["access_token"])

    async def scim(self, tenant_id: str) -> AsyncSCIMClient:
        """A SCIM client for the tenant, its schemas discovered (once per tenant). A tenant the
        app may not read (or that does not exist) raises scim2-models' `NotFoundException`."""
        found = self._scim.get(tenant_id)
        if found is None:
            http = httpx.AsyncClient(
                base_url=f"{self.issuer}/scim/v2/{tenant_id}",
                auth=_Bearer(self),
                timeout=self.http.timeout,
            )
            found = AsyncSCIMClient(http)
            try:
                await found.discover()
            except BaseException:
                await http.aclose()
                raise
            self._scim[tenant_id] = found
        return found

    async def users(self, tenant_id: str, filter: str | None = None) -> AsyncIterator[User[Any]]:
        """Every user of the tenant the app may see (or those `filter` selects), in order."""
        async for resource in self._walk(tenant_id, User, filter):
            yield resource

    async def groups(self, tenant_id: str, filter: str | None = None) -> AsyncIterator[Group]:
        async for resource in self._walk(tenant_id, Group, filter):
            yield resource

    async def _walk(
        self, tenant_id: str, kind: type[Any], filter: str | None
    ) -> AsyncIterator[Any]:
        scim = await self.scim(tenant_id)
        start = 1
        while True:
            request: SearchRequest[Any] = SearchRequest(
                filter=filter, start_index=start, count=PAGE
            )
            page = await scim.query(kind, query_parameters=request)
            resources = list(getattr(page, "resources", None) or [])
            for resource in resources:
                yield resource
            start += len(resources)
            if not resources or start > int(getattr(page, "total_results", 0) or 0):
                return

    async def aclose(self) -> None:
        for scim in self._scim.values():
            await scim.client.aclose()
        if self._own_http:
            await self.http.aclose()
