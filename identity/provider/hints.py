"""`id_token_hint`: an ID token this provider issued, sent back by an app as a hint about the
member, at authorize (OIDC Core §3.1.2.1) and at end_session (RP-Initiated Logout 1.0 §2).

The token may have expired (apps keep them), so only its signature, type, issuer and age are
checked here, by one function for both endpoints; a key revoked since it signed is no longer
among the keys it is checked against (`Provider.keys_in_force`).
"""

from __future__ import annotations

import time
from typing import Any

from identity.provider import keys
from identity.provider.service import Provider

HINT_MAX_AGE_SECONDS = 24 * 3600
"""An expired ID token is still a good hint (apps keep them), within reason."""


async def id_token_claims(provider: Provider, hint: str) -> dict[str, Any] | None:
    """The claims of an ID token this provider signed with a key still in force, issued at
    most a day ago; None for anything else (an access or logout token included)."""
    decoded = keys.verified(await provider.keys_in_force(), hint)
    if decoded is None:
        return None
    claims = decoded.claims
    iat = claims.get("iat")
    if (
        decoded.header.get("typ") != "JWT"  # an ID token: not an access or a logout token
        or "events" in claims
        or claims.get("iss") != provider.issuer
        or not isinstance(iat, int)
        or iat < time.time() - HINT_MAX_AGE_SECONDS
        or not isinstance(claims.get("sub"), str)
    ):
        return None
    return dict(claims)
