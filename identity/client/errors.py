"""What `identity.client` raises: a refused token, or a provider it could not reach.

The two are kept apart because an app answers them differently: a refused token is the
caller's fault (401, or 400 for a logout token), an unreachable provider is nobody's fault yet
(503, try again), and turning the second into the first would sign members out whenever
identity restarts.
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of every error `identity.client` raises."""


class TokenRejected(ClientError):
    """The token is not acceptable. `reason` is a stable code, `detail` says more (no secrets).

    Reasons: `malformed`, `alg_not_allowed`, `missing_kid`, `unknown_kid`, `alg_mismatch`,
    `wrong_typ`, `crit_not_supported`, `bad_signature`, `expired`, `not_yet_valid`,
    `issued_in_future`, `wrong_issuer`, `wrong_audience`, `missing_claim`, `invalid_claim`,
    `azp_mismatch`, `nonce_mismatch`, and for logout tokens `too_old`, `not_logout_event`,
    `nonce_present`, `missing_sid_and_sub`, `replayed`.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ProviderUnavailable(ClientError):
    """The discovery document or the JWKS could not be fetched or made no sense, and no cached
    key could decide. Temporary: answer 503 and let the caller retry."""
