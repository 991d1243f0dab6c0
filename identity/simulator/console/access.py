"""Who may use the console: the scenario's buyer, signed in, from this machine.

- The console answers only clients on a loopback address (127.0.0.0/8, ::1), whatever
  interface the simulator listens on, unless it was started with `--console-anywhere`: the demo
  scenario's buyer password is no secret, and the console changes what identity holds.
- The buyer (`buyer` in the scenario: account, password, mobile) signs in with account and
  password; there is no other account. 10 wrong passwords within 15 minutes close the sign-in
  for the rest of those 15 minutes, for everyone (there is one account).
- A session is a random id in the `sim_console` cookie (HttpOnly, SameSite=Strict, path
  `/console`), held in process memory for 8 hours at most; signing in replaces the session the
  sign-in page made (no fixation; that one lasts 30 minutes), signing out ends it.
- Every form carries the session's CSRF token, compared in constant time before anything is
  done; with SameSite=Strict a cross-site form would not even carry the cookie.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from identity.simulator.scenario import BuyerSpec

COOKIE = "sim_console"
COOKIE_PATH = "/console"
SESSION_SECONDS = 8 * 3600
SIGN_IN_SECONDS = 1800
"""How long the sign-in page's own session (its CSRF token) waits for the password."""
SIGN_IN_FAILURES = 10
SIGN_IN_WINDOW = 15 * 60


@dataclass
class Flash:
    """What the next page shows once: the result of the action just done."""

    zh: str
    en: str
    delivery: int | None = None
    imported: list[dict[str, Any]] | None = None


@dataclass
class Session:
    id: str
    csrf: str
    expires_at: float
    account: str | None = None
    flash: Flash | None = None


@dataclass
class Sessions:
    clock: Callable[[], float]
    _held: dict[str, Session] = field(default_factory=dict)
    _failures: list[float] = field(default_factory=list)

    def new(self, account: str | None = None) -> Session:
        now = self.clock()
        self._held = {k: s for k, s in self._held.items() if s.expires_at > now}
        lasts = SESSION_SECONDS if account else SIGN_IN_SECONDS
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + lasts, account
        )
        self._held[session.id] = session
        return session

    def get(self, cookie: str | None) -> Session | None:
        found = self._held.get(cookie or "")
        return found if found is not None and found.expires_at > self.clock() else None

    def end(self, session: Session) -> None:
        self._held.pop(session.id, None)

    def closed_for(self) -> int:
        """Seconds until the sign-in opens again after too many wrong passwords (0: open)."""
        now = self.clock()
        self._failures = [t for t in self._failures if t > now - SIGN_IN_WINDOW]
        if len(self._failures) < SIGN_IN_FAILURES:
            return 0
        return max(1, math.ceil(self._failures[0] + SIGN_IN_WINDOW - now))

    def sign_in(self, buyer: BuyerSpec | None, account: str, password: str) -> Session | None:
        """A new signed-in session when account and password are the buyer's."""
        expected = (buyer.account, buyer.password) if buyer else ("\x00", "\x00")
        right_account = hmac.compare_digest(expected[0].encode(), account.strip().encode())
        right_password = hmac.compare_digest(expected[1].encode(), password.encode())
        if buyer is None or not (right_account and right_password):
            self._failures.append(self.clock())
            return None
        return self.new(buyer.account)


def from_this_machine(host: str | None) -> bool:
    """A loopback client address (what uvicorn gives as `request.client.host`)."""
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def csrf_ok(session: Session, form: Mapping[str, Any]) -> bool:
    sent = form.get("csrf")
    return isinstance(sent, str) and hmac.compare_digest(session.csrf.encode(), sent.encode())
