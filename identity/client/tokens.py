"""Validating identity's access, ID and logout tokens (docs/provider.md, "Tokens").

Every JWT operation is joserfc's. What is ours is the policy around it:

- Algorithms pinned to ES256 and RS256 by the JWS registry, so `none` and every HMAC algorithm
  are refused before any key is looked at (an HS256 token "signed" with the public key never
  reaches a verifier), and the header's `alg` must be the one the key was published for.
- The `typ` header keeps the three kinds apart: an access token must say `at+jwt` (RFC 9068
  §4), a logout token `logout+jwt` (Back-Channel Logout 1.0 §2.4), and an ID token may say
  neither, so one kind can never be replayed as another.
- `iss` equal to the issuer, `aud` holding our client id, `exp`, `nbf` and `iat` checked with
  a leeway (30 s) for clock skew.

The per-kind claims registries are built once: the hot path is one header parse, one dict read
for the key, the signature check and the claims check, which is what a bare `joserfc.jwt.decode`
plus `JWTClaimsRegistry.validate` costs (benchmarks/validate.py measures both).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyCurveError,
    InvalidKeyTypeError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
    UnsupportedKeyAlgorithmError,
)
from joserfc.jwk import GuestProtocol, Key
from joserfc.jws import JWSRegistry
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from identity.client.errors import ProviderUnavailable, TokenRejected
from identity.client.keys import ALLOWED_ALGORITHMS, KeyCache

Claims = dict[str, Any]
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_REQUIRED: ClaimsOption = {"essential": True}
_CLAIM_REASONS = {"iss": "wrong_issuer", "aud": "wrong_audience", "nbf": "not_yet_valid"}
# Anything that can go wrong while parsing attacker-shaped input (joserfc lets a JSON header
# that is a list or a string through to code that indexes it as a dict).
_MALFORMED = (JoseError, ValueError, TypeError, KeyError, AttributeError)


class _UnknownKid(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Kind:
    name: str
    typs: frozenset[str] | None  # the `typ` values this kind needs; None: any not refused
    refused: frozenset[str]
    claims: JWTClaimsRegistry


def _typ(header: dict[str, Any]) -> str:
    """The header's `typ`, compared as RFC 7515 §4.1.9 says: case-insensitive, with or
    without `application/`."""
    typ = str(header.get("typ", "")).lower()
    return typ[12:] if typ.startswith("application/") else typ


class TokenValidator:
    """Validates identity's tokens for one client (`client_id`) of one provider (`issuer`).

    Safe to share between coroutines and threads; make one per app and keep it. `clock`
    (seconds since the epoch) is injectable for tests, and also paces the key refetches.
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        *,
        leeway: float = 30,
        algorithms: Collection[str] = ALLOWED_ALGORITHMS,
        logout_max_age: float = 300,
        refetch_interval: float = 60,
        key_max_age: float = 3600,
        timeout: float = 5,
        http: httpx.AsyncClient | None = None,
        sync_http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not algorithms or set(algorithms) - set(ALLOWED_ALGORITHMS):
            raise ValueError(f"algorithms must be a non-empty subset of {ALLOWED_ALGORITHMS}")
        self.issuer = issuer
        self.client_id = client_id
        self.leeway = leeway
        self.logout_max_age = logout_max_age
        self.clock = self._clock = clock
        self.keys = KeyCache(
            issuer,
            algorithms=algorithms,
            clock=clock,
            refetch_interval=refetch_interval,
            max_age=key_max_age,
            timeout=timeout,
            http=http,
            sync_http=sync_http,
        )
        self._jws = JWSRegistry(algorithms=list(algorithms), strict_check_header=False)
        self._access = _Kind(
            "access token",
            frozenset({"at+jwt"}),
            frozenset(),
            self._registry("sub", "jti", "client_id"),
        )
        self._id = _Kind(
            "ID token", None, frozenset({"at+jwt", "logout+jwt"}), self._registry("sub")
        )
        self._logout = _Kind(
            "logout token", frozenset({"logout+jwt"}), frozenset(), self._registry("jti", "events")
        )

    def _registry(self, *required: str) -> JWTClaimsRegistry:
        options: dict[str, ClaimsOption] = {name: _REQUIRED for name in ("exp", "iat", *required)}
        return JWTClaimsRegistry(
            now=self._now,
            leeway=int(self.leeway),
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.client_id},
            **options,
        )

    def _now(self) -> int:
        return int(self._clock())

    # -- the public API: async, and the same for code without an event loop ---------------

    async def validate_access_token(self, token: str) -> Claims:
        """The claims of an RFC 9068 access token issued to our client, or TokenRejected."""
        return await self._validate(token, self._access)

    def validate_access_token_sync(self, token: str) -> Claims:
        return self._validate_sync(token, self._access)

    async def validate_id_token(self, token: str, *, nonce: str | None = None) -> Claims:
        """The claims of an ID token for our client; `nonce`, when given, must match."""
        return self._check_id(await self._validate(token, self._id), nonce)

    def validate_id_token_sync(self, token: str, *, nonce: str | None = None) -> Claims:
        return self._check_id(self._validate_sync(token, self._id), nonce)

    async def validate_logout_token(self, token: str) -> Claims:
        """The claims of a back-channel logout token (§2.6). The `jti` replay check is the
        receiver's (identity.client.logout), which holds the seen ids."""
        return self._check_logout(await self._validate(token, self._logout))

    def validate_logout_token_sync(self, token: str) -> Claims:
        return self._check_logout(self._validate_sync(token, self._logout))

    # -- the two drivers: the decode is shared, only fetching a key differs ---------------

    async def _validate(self, token: str, kind: _Kind) -> Claims:
        if self.keys.stale():
            try:
                await self.keys.refresh(wait=not self.keys.kids)
            except ProviderUnavailable:
                if not self.keys.kids:
                    raise
        try:
            return self._decode(token, kind)
        except _UnknownKid:
            await self.keys.refresh()
        return self._decode_after_refresh(token, kind)

    def _validate_sync(self, token: str, kind: _Kind) -> Claims:
        if self.keys.stale():
            try:
                self.keys.refresh_sync(wait=not self.keys.kids)
            except ProviderUnavailable:
                if not self.keys.kids:
                    raise
        try:
            return self._decode(token, kind)
        except _UnknownKid:
            self.keys.refresh_sync()
        return self._decode_after_refresh(token, kind)

    def _decode_after_refresh(self, token: str, kind: _Kind) -> Claims:
        try:
            return self._decode(token, kind)
        except _UnknownKid as unknown:
            if self.keys.last_fetch_failed:
                raise ProviderUnavailable("the provider's keys could not be fetched") from None
            raise TokenRejected("unknown_kid", f"no published key has kid {unknown}") from None

    def _decode(self, token: str, kind: _Kind) -> Claims:
        def key_for(obj: GuestProtocol) -> Key:
            return self._key_for(obj.headers(), kind)

        try:
            claims = jwt.decode(token, key_for, registry=self._jws).claims
            kind.claims.validate(claims)
        except _MALFORMED as error:
            raise _rejected(error) from error
        return claims

    def _key_for(self, header: dict[str, Any], kind: _Kind) -> Key:
        """The key for this header, after the checks that need no cryptography."""
        typ = _typ(header)
        if (typ not in kind.typs) if kind.typs is not None else (typ in kind.refused):
            raise TokenRejected("wrong_typ", f"typ {typ!r} is not a {kind.name}")
        if "crit" in header or "b64" in header:
            raise TokenRejected("crit_not_supported", "no JWS extension is understood here")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenRejected("missing_kid", "the header has no kid")
        entry = self.keys.get(kid)
        if entry is None:
            raise _UnknownKid(kid)
        if entry.alg != header["alg"]:
            raise TokenRejected("alg_mismatch", f"key {kid} is for {entry.alg}")
        return entry.key

    # -- what each kind checks beyond the registry ------------------------------------------

    def _check_id(self, claims: Claims, nonce: str | None) -> Claims:
        """OpenID Connect Core §3.1.3.7: `sub` present, `azp` (when present, and needed with
        several audiences) is our client id, `nonce` as sent."""
        azp, aud = claims.get("azp"), claims["aud"]
        if (azp is not None and azp != self.client_id) or (
            azp is None and isinstance(aud, list) and len(aud) > 1
        ):
            raise TokenRejected("azp_mismatch", "azp is not this client")
        if nonce is not None and claims.get("nonce") != nonce:
            raise TokenRejected("nonce_mismatch", "the nonce is not the one sent")
        return claims

    def _check_logout(self, claims: Claims) -> Claims:
        """Back-Channel Logout 1.0 §2.6 steps 3 to 5, and an `iat` no older than
        `logout_max_age` (the replay cache need keep a jti no longer than that)."""
        if "nonce" in claims:
            raise TokenRejected("nonce_present", "a logout token never carries a nonce")
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(
            events.get(BACKCHANNEL_LOGOUT_EVENT), dict
        ):
            raise TokenRejected("not_logout_event", "events lacks the back-channel logout event")
        sid, sub = claims.get("sid"), claims.get("sub")
        if sid is None and sub is None:
            raise TokenRejected("missing_sid_and_sub", "a logout token needs sid or sub")
        if not isinstance(sid, str | None):
            raise TokenRejected("invalid_claim", "sid must be a string")
        if claims["iat"] < self._clock() - self.logout_max_age - self.leeway:
            raise TokenRejected("too_old", f"issued more than {self.logout_max_age} s ago")
        return claims


def _rejected(error: Exception) -> TokenRejected:
    if isinstance(error, ExpiredTokenError):
        return TokenRejected("expired", "exp has passed")
    if isinstance(error, MissingClaimError):
        return TokenRejected("missing_claim", error.claim)
    if isinstance(error, InvalidClaimError):
        return TokenRejected(_CLAIM_REASONS.get(error.claim, "invalid_claim"), error.description)
    if isinstance(error, UnsupportedAlgorithmError):
        return TokenRejected("alg_not_allowed", error.description)
    if isinstance(error, BadSignatureError):
        return TokenRejected("bad_signature", "the signature does not verify")
    if isinstance(error, InvalidKeyTypeError | InvalidKeyCurveError | UnsupportedKeyAlgorithmError):
        return TokenRejected("alg_mismatch", error.description)
    detail = error.description if isinstance(error, JoseError) else type(error).__name__
    return TokenRejected("malformed", detail)
