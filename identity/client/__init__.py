"""identity.client: what an ISV's Python app needs to trust identity's tokens.

Validate access, ID and back-channel logout tokens against the provider's JWKS (found through
discovery, cached, refetched on an unknown kid at most once a minute), get the member's claims
in a FastAPI route, and receive back-channel logouts. Standalone: it imports neither the server
(no database, no settings, no app) nor FastAPI until a FastAPI factory is called.

See docs/provider.md, "For Python apps: identity.client".
"""

from identity.client.errors import ClientError, ProviderUnavailable, TokenRejected
from identity.client.keys import ALLOWED_ALGORITHMS, KeyCache
from identity.client.logout import (
    JtiCache,
    LogoutHandler,
    ReplayCacheFull,
    receive_logout_token,
    replay_cache_for,
)
from identity.client.tokens import BACKCHANNEL_LOGOUT_EVENT, Claims, TokenValidator
from identity.client.web import backchannel_logout_router, bearer_claims

__all__ = [
    "ALLOWED_ALGORITHMS",
    "BACKCHANNEL_LOGOUT_EVENT",
    "Claims",
    "ClientError",
    "JtiCache",
    "KeyCache",
    "LogoutHandler",
    "ProviderUnavailable",
    "ReplayCacheFull",
    "TokenRejected",
    "TokenValidator",
    "backchannel_logout_router",
    "bearer_claims",
    "receive_logout_token",
    "replay_cache_for",
]
