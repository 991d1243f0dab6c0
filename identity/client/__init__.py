"""identity.client: what an ISV's Python app needs to trust identity's tokens and to know its
tenants' people.

Validate access, ID and back-channel logout tokens against the provider's JWKS (found through
discovery, cached, refetched on an unknown kid at most once a minute), get the member's claims
in a FastAPI route, and receive back-channel logouts. Read a tenant's directory (SCIM 2.0,
`DirectoryReader`) and receive its change events (Standard Webhooks, `EventReceiver`).
Standalone: it imports neither the server (no database, no settings, no app) nor FastAPI until
a FastAPI factory is called.

See docs/provider.md, "For Python apps: identity.client", and docs/events.md.
"""

from identity.client.directory import DirectoryReader
from identity.client.errors import ClientError, ProviderUnavailable, TokenRejected
from identity.client.events import CursorStore, DirectoryEvent, EventReceiver, MemoryCursors
from identity.client.keys import ALLOWED_ALGORITHMS, KeyCache
from identity.client.logout import (
    JtiCache,
    LogoutHandler,
    ReplayCacheFull,
    receive_logout_token,
    replay_cache_for,
)
from identity.client.tokens import BACKCHANNEL_LOGOUT_EVENT, Claims, TokenValidator
from identity.client.web import backchannel_logout_router, bearer_claims, events_router

__all__ = [
    "ALLOWED_ALGORITHMS",
    "BACKCHANNEL_LOGOUT_EVENT",
    "Claims",
    "ClientError",
    "CursorStore",
    "DirectoryEvent",
    "DirectoryReader",
    "EventReceiver",
    "MemoryCursors",
    "JtiCache",
    "KeyCache",
    "LogoutHandler",
    "ProviderUnavailable",
    "ReplayCacheFull",
    "TokenRejected",
    "TokenValidator",
    "backchannel_logout_router",
    "bearer_claims",
    "events_router",
    "receive_logout_token",
    "replay_cache_for",
]
