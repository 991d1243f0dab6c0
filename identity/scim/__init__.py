"""SCIM 2.0 (RFC 7643, RFC 7644), read only: the mirrored directory as the ISV's app backends
read it, at `{base_url}/scim/v2/{tenantId}` (docs/scim.md).

`resources` renders the rows as scim2-models resources, `filters` turns a SCIM filter into SQL,
`storage` is scim2-server's storage over the database, and `app` the ASGI application
`create_app` mounts."""
