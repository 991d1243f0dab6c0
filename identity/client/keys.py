"""The provider's signing keys, fetched through discovery and cached per `kid`.

`{issuer}/.well-known/openid-configuration` names `jwks_uri` (OpenID Connect Discovery 1.0
§4; its `issuer` must equal ours exactly, §4.3). Each usable JWK is imported once, with the one
algorithm it may verify pinned next to it: its `alg` member, or for a JWK without one the
algorithm its type implies (EC P-256: ES256, RSA: RS256). Keys for other algorithms, for
encryption, or RSA keys under 2048 bits are left out.

A token with a `kid` we do not hold makes us fetch again (the provider publishes a new key
before it signs with it, so this is the normal path after a rotation), but at most once per
`refetch_interval` (60 s): a flood of tokens with made-up kids costs the provider one request a
minute. A failed fetch may be retried sooner (`retry_after_failure`, 5 s), so an app that
started while identity was restarting recovers quickly. The whole set is also refreshed once it
is older than `max_age` (an hour), so a key the provider withdrew stops verifying. A refetch
replaces the set: keys no longer published are forgotten.

The hot path (`get`) is one dict read, without a lock: the dict is replaced, never mutated.
The decision to fetch is taken under a small threading lock, and the fetch under way is a
`concurrent.futures.Future` that callers with a new kid wait on, from any thread (sync calls)
or event loop (async calls): one fetch at a time, whoever asks. The routine refresh of a set we
still hold never makes the others wait: they go on with the keys they have meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, Key, RSAKey

from identity.client.errors import ProviderUnavailable

ALLOWED_ALGORITHMS = ("ES256", "RS256")
_KTY_OF = {"ES256": "EC", "RS256": "RSA"}
MAX_DOCUMENT_BYTES = 256 * 1024
MIN_RSA_BITS = 2048
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

log = logging.getLogger("identity.client")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A verification key and the one algorithm it may be used with."""

    key: Key
    alg: str


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def require_https(url: str, what: str) -> None:
    """Keys fetched over plain HTTP could be swapped on the way; only loopback may skip TLS."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return
    raise ValueError(f"{what} must be an https URL (http only on loopback): {url!r}")


def import_signing_key(jwk: Any, algorithms: Collection[str]) -> tuple[str, SigningKey] | None:
    """(kid, key) for a JWK we may verify with, or None for one to leave out."""
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    alg = jwk.get("alg") or ("ES256" if jwk.get("crv") == "P-256" else "RS256")
    if alg not in algorithms or jwk.get("kty") != _KTY_OF[alg]:
        return None
    try:
        key = JWKRegistry.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    if isinstance(key, ECKey) and key.curve_name != "P-256":
        return None
    if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
        return None
    return jwk["kid"], SigningKey(key, alg)


class KeyCache:
    """The provider's verification keys by kid; see the module docstring for the policy."""

    def __init__(
        self,
        issuer: str,
        *,
        algorithms: Collection[str] = ALLOWED_ALGORITHMS,
        clock: Callable[[], float],
        refetch_interval: float = 60.0,
        retry_after_failure: float = 5.0,
        max_age: float = 3600.0,
        timeout: float = 5.0,
        http: httpx.AsyncClient | None = None,
        sync_http: httpx.Client | None = None,
    ) -> None:
        require_https(issuer, "issuer")
        self.issuer = issuer
        self.algorithms = tuple(algorithms)
        self._clock = clock
        self._refetch_interval = refetch_interval
        self._retry_after_failure = retry_after_failure
        self._max_age = max_age
        self._timeout = timeout
        self._http = http
        self._sync_http = sync_http
        self._keys: dict[str, SigningKey] = {}
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._last_failed = False
        self._decide = threading.Lock()
        self._inflight: Future[None] | None = None  # the fetch under way, if any
        self.fetches = 0  # attempts made, for an app's own metrics

    def get(self, kid: str) -> SigningKey | None:
        return self._keys.get(kid)

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    @property
    def last_fetch_failed(self) -> bool:
        return self._last_failed

    def stale(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or self._clock() - fetched > self._max_age

    async def refresh(self, *, wait: bool = True) -> None:
        """Fetch the keys unless that was done within the allowed interval; when another
        caller (any thread, any event loop) is fetching, wait for it unless `wait` is False
        (a routine refresh of a set we still hold: go on with the keys we have).
        Raises ProviderUnavailable when this call fetched and failed."""
        mine, inflight = self._claim()
        if inflight is None:
            return
        if not mine:
            if wait:
                await asyncio.wrap_future(inflight)
            return
        try:
            async with asyncio.timeout(2 * self._timeout):  # two requests, one deadline
                if self._http is not None:
                    await self._fetch_async(self._http)
                else:
                    async with httpx.AsyncClient(timeout=self._timeout) as http:
                        await self._fetch_async(http)
        except (httpx.HTTPError, ValueError, TimeoutError) as error:
            raise self._failed(error) from error
        finally:
            self._done(inflight)

    def refresh_sync(self, *, wait: bool = True) -> None:
        """`refresh` for code without an event loop (threads, WSGI)."""
        mine, inflight = self._claim()
        if inflight is None:
            return
        if not mine:
            if wait:
                with contextlib.suppress(TimeoutError):
                    inflight.result(timeout=2 * self._timeout)
            return
        try:
            if self._sync_http is not None:
                self._fetch_sync(self._sync_http)
            else:
                with httpx.Client(timeout=self._timeout) as http:
                    self._fetch_sync(http)
        except (httpx.HTTPError, ValueError) as error:
            raise self._failed(error) from error
        finally:
            self._done(inflight)

    def _claim(self) -> tuple[bool, Future[None] | None]:
        """(True, future) when this caller is to fetch now; (False, future) when another is
        fetching; (False, None) when a fetch was made within the interval. The attempt counts
        as failed until it succeeds, so the waiters of a fetch that was cancelled half-way see
        the provider as unavailable rather than their kid as unknown."""
        with self._decide:
            if self._inflight is not None:
                return False, self._inflight
            now = self._clock()
            last = self._last_attempt
            pause = self._retry_after_failure if self._last_failed else self._refetch_interval
            if last is not None and last <= now < last + pause:
                return False, None
            self._last_attempt = now
            self._last_failed = True
            self.fetches += 1
            self._inflight = Future()
            self._inflight.set_running_or_notify_cancel()  # a cancelled waiter cannot cancel it
            return True, self._inflight

    def _done(self, inflight: Future[None]) -> None:
        with self._decide:
            self._inflight = None
        inflight.set_result(None)

    async def _fetch_async(self, http: httpx.AsyncClient) -> None:
        jwks_uri = self._jwks_uri(_json(await http.get(discovery_url(self.issuer))))
        self._install(_json(await http.get(jwks_uri)))

    def _fetch_sync(self, http: httpx.Client) -> None:
        jwks_uri = self._jwks_uri(_json(http.get(discovery_url(self.issuer))))
        self._install(_json(http.get(jwks_uri)))

    def _jwks_uri(self, document: Any) -> str:
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise ValueError("the discovery document names another issuer")
        uri = document.get("jwks_uri")
        if not isinstance(uri, str):
            raise ValueError("the discovery document has no jwks_uri")
        require_https(uri, "jwks_uri")
        return uri

    def _install(self, jwks: Any) -> None:
        entries = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(entries, list):
            raise ValueError("the JWKS has no keys list")
        keys = dict(
            found for entry in entries if (found := import_signing_key(entry, self.algorithms))
        )
        if not keys:
            raise ValueError("the JWKS holds no usable signing key")
        self._keys = keys
        self._fetched_at = self._clock()
        self._last_failed = False

    def _failed(self, error: Exception) -> ProviderUnavailable:
        log.warning("identity.client: fetching the provider's keys failed: %r", error)
        return ProviderUnavailable(f"could not fetch the provider's keys: {error!r}")


def _json(response: httpx.Response) -> Any:
    response.raise_for_status()
    if len(response.content) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"{response.url} answered more than {MAX_DOCUMENT_BYTES} bytes")
    return response.json()
