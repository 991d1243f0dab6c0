"""SCIM 2.0 (RFC 7643, RFC 7644), read only: the mirrored directory as the ISV's app backends
read it, at `{base_url}/scim/v2/{tenantId}` (docs/scim.md).

`resources` renders the rows as scim2-models resources, `filters` turns a SCIM filter into SQL,
`storage` is scim2-server's storage over the database, and `app` the ASGI application
`create_app` mounts."""

from __future__ import annotations

from typing import Any

from identity.settings import Settings

MOUNT = "/scim/v2/{tenant_id}"
"""Where `create_app` mounts the service (`app.MOUNT` is the same)."""


class Mounted:
    """The SCIM service as `create_app` mounts it, built at its first request: scim2-models
    builds its schemas when imported (most of a second), which every start of every replica
    and command would pay otherwise, for a surface that is called long after start."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from identity.scim.app import ScimApp

            self._app = ScimApp(self.settings)
        await self._app(scope, receive, send)
