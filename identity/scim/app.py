"""The SCIM service (RFC 7644) as an ASGI application, which `create_app` mounts at
`/scim/v2/{tenant_id}`: scim2-server's, read only, over `storage.DirectoryStorage`.

Each request, in order: `ServiceProviderConfig` is answered to anyone (RFC 7644 §4: it tells how
to authenticate). Anything else needs a live directory token of the client-credentials grant
(`Provider.directory_client`): none, or one no longer live, is a 401 with `WWW-Authenticate:
Bearer`. Then the tenant must be one the client's app may read (`storage.view_of`), else the
whole base URL is a 404, the same whether the tenant exists or not. Then scim2-server serves the
operation; a write (POST, PUT, PATCH, DELETE, Bulk, `/Me`) is a 501, before anything is read.

The base URL of every location and reference is `IDENTITY_BASE_URL`'s, never the request's
`Host`. Errors are SCIM's (RFC 7644 §3.12); a database that cannot be reached is a 503 with
`Retry-After`, as on every surface of identity. Nothing a client sent is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

import structlog
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Error,
    ETag,
    Filter,
    InvalidSyntaxException,
    NotFoundException,
    NotImplementedException,
    Pagination,
    Patch,
    Resource,
    ResourceType,
    SCIMException,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    UnauthorizedException,
)
from scim2_server.applications.asgi import ASGIApplication, Receive, Scope, Send
from scim2_server.applications.base import BaseApplication
from scim2_server.handler import AsyncScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import ROUTES, Operation, Target, match_pattern
from scim2_server.service import ScimService
from starlette import types as asgi
from starlette.requests import Request

from identity import web
from identity.crypto import derive_key
from identity.scim import resources
from identity.scim.storage import DirectoryStorage, view_of
from identity.settings import Settings

log = structlog.get_logger("identity")

MOUNT = f"{resources.SCIM_PATH}/{{tenant_id}}"
"""Where `create_app` mounts the service (`identity.scim.MOUNT`, which does not load this)."""
PAGE_SIZE, MAX_RESULTS = 100, 200
CURSOR_SECONDS = 3600

CONFIG = ServiceProviderConfig(
    documentation_uri=None,
    patch=Patch(supported=False),
    bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
    filter=Filter(supported=True, max_results=MAX_RESULTS),
    change_password=ChangePassword(supported=False),
    sort=Sort(supported=False),
    etag=ETag(supported=True),
    pagination=Pagination(
        cursor=True,
        index=True,
        default_pagination_method=Pagination.DefaultPaginationMethod.index,
        default_page_size=PAGE_SIZE,
        max_page_size=MAX_RESULTS,
        cursor_timeout=CURSOR_SECONDS,
    ),
    authentication_schemes=[
        AuthenticationScheme(
            type=AuthenticationScheme.Type.oauthbearertoken,
            name="OAuth Bearer Token",
            description=(
                "An access token of the client-credentials grant at /oauth2/token, "
                "with the scope directory.read"
            ),
            spec_uri="https://www.rfc-editor.org/info/rfc6750",
            primary=True,
        )
    ],
)
PROVIDER = ScimProvider(
    models=resources.MODELS, resource_types=resources.RESOURCE_TYPES, config=CONFIG
)
WRITES = frozenset({Operation.create, Operation.replace, Operation.patch, Operation.delete})


@dataclass(frozen=True)
class _Labelled:
    """What the request observer reads a route's template from (`observability.route_of`)."""

    path: str | None


def route_of(request: ScimRequest) -> str | None:
    """The SCIM route a request is for, as a template under the mount (`/scim/v2/{tenant_id}/
    Users/{resource_id}`), for the HTTP metrics' `route` label: never the raw path (a tenant
    id, a resource id, an unknown endpoint)."""
    segments = [part for part in request.path.strip("/").split("/") if part]
    for route in ROUTES:
        if match_pattern(route.pattern, segments) is not None:
            pattern = route.pattern.rstrip("/")
            if "{endpoint}" in pattern:
                endpoint = next(
                    (t.endpoint for t in resources.RESOURCE_TYPES
                     if str(t.endpoint).strip("/").casefold() == segments[0].casefold()),
                    None,
                )  # fmt: skip
                if endpoint is None:
                    return None
                pattern = pattern.replace("/{endpoint}", str(endpoint))
            return MOUNT + pattern
    return None


class ReadOnlyService(ScimService):
    """scim2-server's service, refusing every write before its body is read (RFC 7644 §3.12:
    501 for an operation the service provider does not support)."""

    def authorize(self, request: ScimRequest, target: Target, resource_type: ResourceType) -> None:
        if target.operation in WRITES:
            raise NotImplementedException(
                detail="identity's directory is read only: it changes through the marketplace"
            )

    def publish(self, base_url: str, resource: Resource[Any]) -> Resource[Any]:
        """The resource with its location. The storage builds each resource for the request
        alone, its references already URLs under the configured base (`resources`), so
        scim2-server's deep copy and walk over the references (most of a page's time) would
        change nothing."""
        assert resource.meta is not None and resource.id is not None
        resource_type = self.get_resource_type_of(resource)
        resource.meta.location = self.resource_location(base_url, resource_type, resource.id)
        return resource


class ScimApp(ASGIApplication):
    """The SCIM service of every tenant, one base URL each (`{base_url}/scim/v2/{tenantId}`).

    Each request gets a storage of its own, for the client and the tenant it is about; the
    database and the provider are the app's (`identity.web`)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.secret_key is not None
        secret = derive_key(settings.secret_key.get_secret_value(), "identity/scim/cursor/v1")
        BaseApplication.__init__(self, PROVIDER, ReadOnlyService(PROVIDER, secret=secret))
        self.base_url = settings.base_url

    def get_base_url(self, scope: Scope) -> str:  # type: ignore[override]
        """The tenant's SCIM base, under identity's configured base URL."""
        return resources.scim_base(self.base_url, scope["path_params"]["tenant_id"])

    async def __call__(  # type: ignore[override]
        self, scope: asgi.Scope, receive: asgi.Receive, send: asgi.Send
    ) -> None:
        """A request as Starlette's mount hands it over (no lifespan reaches a mount)."""
        reply = cast(Send, send)
        try:
            request = await self.read_request(cast(Scope, scope), cast(Receive, receive))
        except UnicodeDecodeError:  # a query or a header that is not text
            refused = InvalidSyntaxException(detail="the request is not UTF-8")
            await self.send_response(self.service.error_response(refused), reply)
            return
        scope.setdefault("route", _Labelled(route_of(request)))
        try:
            response = await self._answer(request, Request(scope), scope["path_params"])
        except Exception as exc:
            response = self.handle_exception(request, exc)
        await self.send_response(self.finalize_response(request, response), reply)

    async def _answer(
        self, request: ScimRequest, incoming: Request, path_params: dict[str, Any]
    ) -> ScimResponse:
        if not self.needs_auth(request):  # ServiceProviderConfig
            with self.service.provider:
                return self.service.service_provider_config(request.url, request.query)
        provider = web.provider(incoming)
        client = await provider.directory_client(request.header("Authorization"))
        if client is None:
            raise UnauthorizedException(detail="a live directory.read bearer token is needed")
        db = web.database(incoming)
        async with db.single_read() as conn:
            view = await view_of(
                conn, self.base_url, provider.subjects, path_params["tenant_id"], client.app_id
            )
        if view is None:
            raise NotFoundException(detail="no such tenant")
        request.subject = client
        return await AsyncScimHandler(self.service, DirectoryStorage(db, view)).handle(request)

    def handle_exception(self, request: ScimRequest, exception: Exception) -> ScimResponse:
        """SCIM's error response; a database outage is a 503 to retry. Logged by type and
        status only: a SCIM error's detail may quote the request (a filter's values)."""
        if isinstance(exception, SCIMException):
            log.info("scim_refused", status=exception.status, scim_type=exception.scim_type)
            return self.service.error_response(exception)
        log.error("request_failed", path=request.path, error=type(exception).__name__)
        if web.database_outage(exception):
            error = Error(status=503, detail="the database is unavailable; retry")
            retry = {"Retry-After": str(web.DATABASE_RETRY_SECONDS)}
            return ScimResponse(HTTPStatus.SERVICE_UNAVAILABLE, error.model_dump(), retry)
        return self.service.error_response(exception)
