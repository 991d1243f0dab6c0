"""The provider's signing keys: kept in the database, private halves encrypted under the master
key, published as a JWKS, rotated without a gap (joserfc for every JWK).

A key's state follows from the times, so every replica agrees without coordination:
- `next`: published, not signing yet (`activates_at` in the future), so that caches of the JWKS
  fetch it before any token it signs appears;
- `active`: the newest key whose `activates_at` has passed; it signs everything;
- `retired`: an older key. It stays in the JWKS until every token it signed has expired (the
  longest token lifetime, plus a margin, after the moment its successor took over), then it is
  only listed.
A revoked key (`identity keys revoke`, after a compromise) leaves the JWKS at once and is
`retired`; tokens it signed stop being active at once (identity.provider.grants checks `kid`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeyParameters, KeySet, RSAKey
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity.crypto import Cipher
from identity.db import lock
from identity.models import SigningKey

ALGORITHMS = ("ES256", "RS256")
Key = ECKey | RSAKey


def _generate(alg: str, kid: str) -> Key:
    parameters: KeyParameters = {"alg": alg, "use": "sig", "kid": kid}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=parameters)
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=parameters)
    raise ValueError(f"unknown algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}")


def _context(kid: str) -> tuple[str, ...]:
    return ("signing_keys", kid)


@dataclass(frozen=True)
class KeyState:
    kid: str
    alg: str
    state: str
    activates_at: datetime
    published: bool
    revoked: bool

    def describe(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "state": self.state,
            "activatesAt": self.activates_at.isoformat(timespec="seconds") + "Z",
            "published": self.published,
            "revoked": self.revoked,
        }


PUBLISH_MARGIN = timedelta(minutes=2)
"""A retired key stays published this much longer than its tokens' lifetime: replicas may sign
with it for up to 30 s after its successor starts (they read the keys every 30 s), and clocks
differ a little."""


def states(rows: list[SigningKey], now: datetime, lifetime: timedelta) -> list[KeyState]:
    """Each key's state at `now`; `lifetime` is the longest a token it signed may live.

    The active key is the newest key that has started, and only if it is not revoked: revoking
    it must never hand signing back to an older key (which may have been rotated away for a
    reason); `ensure` then makes a new one."""
    ordered = sorted(rows, key=lambda r: r.activates_at)
    started = [r for r in ordered if r.activates_at <= now]
    newest = started[-1] if started else None
    successor = {a.kid: b.activates_at for a, b in zip(ordered, ordered[1:], strict=False)}
    result = []
    for row in ordered:
        revoked = row.revoked_at is not None
        if revoked:
            state, published = "retired", False
        elif row is newest:
            state, published = "active", True
        elif row.activates_at > now:
            state, published = "next", True
        else:
            until = successor[row.kid] + lifetime + PUBLISH_MARGIN
            state, published = "retired", until > now
        result.append(KeyState(row.kid, row.alg, state, row.activates_at, published, revoked))
    return result


async def rows(session: AsyncSession) -> list[SigningKey]:
    return list((await session.scalars(select(SigningKey))).all())


async def create(
    session: AsyncSession, cipher: Cipher, *, alg: str, activates_at: datetime, now: datetime
) -> str:
    """A new key, published at once, signing from `activates_at`; returns its kid."""
    kid = secrets.token_hex(16)  # never a leading '-': `identity keys revoke KID` must read it
    key = _generate(alg, kid)
    session.add(
        SigningKey(
            kid=kid,
            alg=alg,
            private_enc=cipher.encrypt(json.dumps(key.as_dict(private=True)), _context(kid)),
            public_jwk=json.dumps(key.as_dict(private=False)),
            created_at=now,
            activates_at=activates_at,
        )
    )
    await session.flush()
    return kid


async def ensure(session: AsyncSession, cipher: Cipher, now: datetime, lifetime: timedelta) -> None:
    """A fresh installation (or one whose keys were all revoked) gets a key of its own."""
    await lock(session, "signing_keys")
    if not any(s.state == "active" for s in states(await rows(session), now, lifetime)):
        await create(session, cipher, alg="ES256", activates_at=now, now=now)


async def revoke(
    session: AsyncSession, cipher: Cipher, kid: str, now: datetime, lifetime: timedelta
) -> bool:
    """Take a key out of use and out of the JWKS at once; a new key takes over when it was the
    active one. False when there is no such key."""
    result = await session.execute(
        update(SigningKey).where(SigningKey.kid == kid).values(revoked_at=now)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    await ensure(session, cipher, now, lifetime)
    return True


VERIFIED_KEPT = 10_000
"""Tokens remembered as verified per key set: a few MiB."""


@dataclass(frozen=True)
class Published:
    """What one replica uses until it reads the keys again."""

    signing_kid: str
    signing_alg: str
    signing_key: Key
    jwks: dict[str, Any]
    verifying: KeySet
    read_at: datetime
    jwks_json: bytes = b""
    """`jwks` serialised once, as the JWKS endpoint sends it."""
    verified_tokens: dict[str, jwt.Token] = field(default_factory=dict, compare=False)
    """Tokens whose signature these keys verified (`verified`), at most `VERIFIED_KEPT`."""

    @property
    def kids(self) -> list[str]:
        """Every key published (and so trusted to verify)."""
        return [str(key["kid"]) for key in self.jwks["keys"]]


def verified(published: Published, token: str) -> jwt.Token | None:
    """`token` with its signature checked against the published keys, the algorithms pinned
    (never `none` or HMAC); None when it does not verify. Its claims are the caller's to check.
    (joserfc raises TypeError, not a JOSE error, for a header such as `"crit": null`.)

    An app presents the same access token again and again (introspection, userinfo): a token
    these keys have verified once is not verified again while they are the keys in use. Only a
    signature is remembered: expiry, the key's revocation and the grant are checked every time
    by the caller, and the memory goes with the key set when the keys are read again. What
    fails to verify is never kept, so made-up tokens cannot fill it."""
    known = published.verified_tokens.get(token)
    if known is not None:
        return known
    try:
        decoded = jwt.decode(token, published.verifying, algorithms=list(ALGORITHMS))
    except (JoseError, ValueError, TypeError):
        return None
    if len(published.verified_tokens) >= VERIFIED_KEPT:
        published.verified_tokens.pop(next(iter(published.verified_tokens)))  # the oldest
    published.verified_tokens[token] = decoded
    return decoded


def load(rows: list[SigningKey], cipher: Cipher, now: datetime, lifetime: timedelta) -> Published:
    by_kid = {r.kid: r for r in rows}
    current = states(rows, now, lifetime)
    active = next(s for s in current if s.state == "active")
    row = by_kid[active.kid]
    private = json.loads(cipher.decrypt(row.private_enc, _context(row.kid)))
    signing = (ECKey if row.alg == "ES256" else RSAKey).import_key(private)
    public = [json.loads(by_kid[s.kid].public_jwk) for s in current if s.published]
    return Published(
        signing_kid=row.kid,
        signing_alg=row.alg,
        signing_key=signing,
        jwks={"keys": public},
        verifying=KeySet.import_key_set({"keys": public}),
        read_at=now,
        jwks_json=json.dumps({"keys": public}, separators=(",", ":")).encode(),
    )
