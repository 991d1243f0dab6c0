"""An OpenAPI description of the OpenID Provider's endpoints, for the schemathesis run of
tests/test_schemathesis.py only.

They are not in the service's `/openapi.json` on purpose: their contract is RFC 6749 (token),
RFC 7662 (introspection), RFC 7009 (revocation), OpenID Connect Core (userinfo) and Discovery,
and a relying party finds them through `/.well-known/openid-configuration`, not through a schema
of the ISV's API. This fragment says what those documents and identity.provider.routes answer:
the request forms, the success bodies' required members, and an error as RFC 6749 §5.2 JSON
`{"error", "error_description"}`. tests/test_schemathesis.py checks that every operation here is
a route of the app, so a renamed endpoint cannot leave it describing nothing.
"""

from __future__ import annotations

from typing import Any

FORM = "application/x-www-form-urlencoded"
OAUTH_ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": OAUTH_ERROR}}}


ERRORS = {
    "400": _error("invalid_request, invalid_grant, unsupported_grant_type, ..."),
    "401": _error("invalid_client (client authentication failed)"),
}
AUTHORIZATION = {
    "name": "authorization",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "HTTP Basic client credentials (RFC 6749 §2.3.1), or a bearer token",
}


def _form(*fields: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    properties = {name: {"type": "string"} for name in fields}
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return {"required": True, "content": {FORM: {"schema": schema}}}


def _json(description: str, required: list[str], **properties: Any) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


STRING = {"type": "string"}
TOKEN_FORM = _form(
    "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "client_id",
    "client_secret", "scope", required=("grant_type",),
)  # fmt: skip
TOKEN_HINT_FORM = _form(
    "token", "token_type_hint", "client_id", "client_secret", required=("token",)
)

PATHS: dict[str, Any] = {
    "/.well-known/openid-configuration": {
        "get": {
            "operationId": "discovery",
            "responses": {
                "200": _json(
                    "OpenID Provider Metadata",
                    ["issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"],
                    issuer=STRING,
                    authorization_endpoint=STRING,
                    token_endpoint=STRING,
                    jwks_uri=STRING,
                )
            },
        }
    },
    "/oauth2/jwks": {
        "get": {
            "operationId": "jwks",
            "responses": {
                "200": _json(
                    "The keys in force",
                    ["keys"],
                    keys={
                        "type": "array",
                        "items": {"type": "object", "required": ["kty", "kid"]},
                    },
                )
            },
        }
    },
    "/oauth2/token": {
        "post": {
            "operationId": "token",
            "parameters": [AUTHORIZATION],
            "requestBody": TOKEN_FORM,
            "responses": {
                "200": _json(
                    "Tokens issued",
                    ["access_token", "token_type", "expires_in"],
                    access_token=STRING,
                    token_type=STRING,
                    expires_in={"type": "integer"},
                ),
                **ERRORS,
            },
        }
    },
    "/oauth2/introspect": {
        "post": {
            "operationId": "introspect",
            "parameters": [AUTHORIZATION],
            "requestBody": TOKEN_HINT_FORM,
            "responses": {
                "200": _json("The token's state", ["active"], active={"type": "boolean"}),
                **ERRORS,
            },
        }
    },
    "/oauth2/revoke": {
        "post": {
            "operationId": "revoke",
            "parameters": [AUTHORIZATION],
            "requestBody": TOKEN_HINT_FORM,
            "responses": {"200": {"description": "Revoked, or nothing to revoke"}, **ERRORS},
        }
    },
    "/oauth2/userinfo": {
        "get": {
            "operationId": "userinfo",
            "parameters": [AUTHORIZATION],
            "responses": {
                "200": _json("The member's claims", ["sub"], sub=STRING),
                **ERRORS,
            },
        }
    },
}
"""The provider's operations as OpenAPI 3.1 path items."""
