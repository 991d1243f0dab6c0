"""Renewing an app's upstream tokens as its session is used (contract §5.2 step 8).

`identity.sessions.Sessions` calls `Renewal.renew` when a session's upstream access token is
near its expiry. Three short transactions around one outbound call: claim the lease, call the
auth centre with none open, then keep the result.
"""

from __future__ import annotations

import structlog

from identity.crypto import Cipher
from identity.db import Database, utcnow
from identity.observability import Metrics
from identity.sessions import store
from identity.sessions.store import Policy, SignedIn
from identity.sso import admission
from identity.sso.refusals import Refusal
from identity.sso.upstream import TRANSIENT, AuthCentre, UpstreamError

log = structlog.get_logger("identity.sso")
# A renewal failing for these keeps the session while its access token is still valid: the
# auth centre did not refuse anything, it (or identity's budget for it) was just unavailable.
RENEWAL_RETRIES = TRANSIENT | {"busy", "unavailable"}


class Renewal:
    def __init__(
        self,
        db: Database,
        cipher: Cipher,
        auth_centre: AuthCentre,
        metrics: Metrics,
        policy: Policy,
    ) -> None:
        self.db, self.cipher, self.auth_centre = db, cipher, auth_centre
        self.metrics, self.policy = metrics, policy

    async def renew(self, signed_in: SignedIn) -> SignedIn | None:
        """Refresh the upstream token, one request at a time (a lease).

        A refused renewal (`invalid_grant`, the tenant or credential gone) ends the app's part of
        the session (and the session with its last app). A transient failure (timeout,
        unreachable, 5xx) keeps it while the current access token is still valid, and the lease
        makes the next attempt wait `renewal_lease`; once the token has expired, a failure ends
        the session."""
        now = utcnow()
        if signed_in.renewing_until is not None and signed_in.renewing_until > now:
            return signed_in  # another request is renewing, or a failure is backing off
        async with self.db.write() as conn:
            if not await store.claim_renewal(conn, signed_in, now, self.policy):
                return signed_in
        try:
            client = await admission.read_client(
                self.db, self.cipher, signed_in.tenant_id, signed_in.app_id
            )
            refresh_token = store.decrypt_refresh_token(self.cipher, signed_in)
            if refresh_token is None:
                raise UpstreamError("invalid_grant", "no refresh token was issued")
            tokens = await self.auth_centre.refresh(client, refresh_token)
        except (Refusal, UpstreamError) as exc:
            return await self._failed(signed_in, exc)
        async with self.db.write() as conn:
            await store.store_renewed(conn, self.cipher, signed_in, tokens, utcnow())
            renewed = await store.load(conn, signed_in.id_hash, signed_in.app_id)
        self.metrics.sso_renewals.labels("success").inc()
        return renewed

    async def _failed(self, signed_in: SignedIn, exc: Refusal | UpstreamError) -> SignedIn | None:
        kind = exc.kind if isinstance(exc, UpstreamError) else exc.code
        self.metrics.sso_renewals.labels(kind).inc()
        log.warning("sso.renewal_failed", tenant_id=signed_in.tenant_id, reason=kind)
        expiry = signed_in.token_expires_at
        if kind in RENEWAL_RETRIES and expiry is not None and expiry > utcnow():
            return signed_in
        async with self.db.write() as conn:
            held = await store.load(conn, signed_in.id_hash, signed_in.app_id)
            if held is not None and held.refresh_token_enc != signed_in.refresh_token_enc:
                # Another request renewed meanwhile (its lease ran out while the auth centre
                # was slow) and spent the refresh token this one used: not a refusal.
                return held
            await store.end_session_app(conn, signed_in.sid, signed_in.app_id)
        return None
