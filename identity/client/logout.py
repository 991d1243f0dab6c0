"""Receiving a back-channel logout (OpenID Connect Back-Channel Logout 1.0 §2.5 to §2.8).

`receive_logout_token` validates the token (TokenValidator.validate_logout_token), refuses a
`jti` already seen, and calls the app's handler with `sid` and `sub`. It is framework-free;
identity.client.web wraps it as a FastAPI route.

The replay cache is in this process's memory: it keeps each jti for as long as a token carrying
it could still be accepted (`logout_max_age` + 2 × leeway: `iat` may be up to one leeway in the
future and one leeway past the maximum age), so older entries can be dropped without reopening
a replay, and it holds at most `max_entries` ids. When full of live ids it refuses new tokens
as *temporarily* unacceptable (ReplayCacheFull, a 503 from the route): identity retries, and
dropping a live id instead would let that token be replayed. Several replicas of an app each
have their own cache, so a token replayed to another replica is accepted there: harmless, as
ending a session twice ends it once, and identity itself sends a fresh jti per attempt.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from identity.client.errors import ProviderUnavailable, TokenRejected
from identity.client.tokens import TokenValidator

LogoutHandler = Callable[[str | None, str | None], Awaitable[None] | None]


class ReplayCacheFull(ProviderUnavailable):
    """Every slot of the replay cache holds a live jti: try again later (503)."""


class JtiCache:
    """The jtis seen recently, each kept `ttl` seconds, at most `max_entries` at once."""

    def __init__(
        self, ttl: float, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()  # insertion order = expiry order
        self._lock = threading.Lock()

    def add(self, jti: str) -> bool:
        """Record `jti`; False when it was already recorded and has not expired."""
        with self._lock:
            now = self._clock()
            while self._expiry and next(iter(self._expiry.values())) <= now:
                self._expiry.popitem(last=False)
            if jti in self._expiry:
                return False
            if len(self._expiry) >= self.max_entries:
                raise ReplayCacheFull("too many logout tokens within their lifetime")
            self._expiry[jti] = now + self.ttl
            return True

    def discard(self, jti: str) -> None:
        with self._lock:
            self._expiry.pop(jti, None)

    def __len__(self) -> int:
        return len(self._expiry)


def replay_cache_for(validator: TokenValidator, max_entries: int = 100_000) -> JtiCache:
    ttl = validator.logout_max_age + 2 * validator.leeway
    return JtiCache(ttl, max_entries=max_entries, clock=validator.clock)


async def receive_logout_token(
    validator: TokenValidator, seen: JtiCache, handler: LogoutHandler, token: str
) -> tuple[str | None, str | None]:
    """Validate `token`, refuse a replay, then call `handler(sid, sub)`; returns (sid, sub).

    Raises TokenRejected (answer 400), ProviderUnavailable (503). If the handler raises, the
    jti is forgotten again, so that a retry of the same token is not refused as a replay."""
    claims = await validator.validate_logout_token(token)
    jti = claims["jti"]
    if not seen.add(jti):
        raise TokenRejected("replayed", "this jti was already received")
    sid, sub = claims.get("sid"), claims.get("sub")
    try:
        outcome = handler(sid, sub)
        if inspect.isawaitable(outcome):
            await outcome
    except BaseException:
        seen.discard(jti)
        raise
    return sid, sub
