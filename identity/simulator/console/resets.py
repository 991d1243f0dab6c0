"""An administrator resets a member's password, with a code sent to the administrator (§6).

1. The administrator types the member's new password (the password rules apply). Within the
   limits, a 6-digit code goes to the administrator's own phone through the development sender;
   the reset counts from the moment the code was sent (a code that could not be sent does not).
   It is counted as the code is made, before it is written, and taken back when it could not
   be: two requests at once cannot both pass the limit while the first code is being written.
2. The administrator types the code: right, within 5 minutes and 5 tries, and the member's
   password becomes the one typed, to be changed at their next sign-in (`first_sign_in`); their
   sign-ins at the auth centre end. The ISV hears nothing: it never sees passwords.

Limits, per member, as the documentation gives them (§6): at most one reset in 3 minutes, 15
in an hour, 60 in a day, with the rules' texts identity's own resets show
(identity.admin.reset_limits). A refusal says how many seconds until the next is allowed. The
clock is the auth centre's, injectable; the counts live in process memory.
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from identity.simulator.console.world import NotAllowed

CODE_SECONDS = 300
MAX_TRIES = 5

Key = tuple[str, str]
"""(tenantId, userName)."""


@dataclass
class Pending:
    """A reset waiting for its code: the new password stays here until then."""

    key: Key
    password: str
    code: str
    expires_at: float
    made_at: float
    tries: int = 0


@dataclass
class Resets:
    clock: Callable[[], float]
    _sent: dict[Key, list[float]] = field(default_factory=dict)
    _pending: dict[str, Pending] = field(default_factory=dict)

    def wait(self, key: Key) -> None:
        """Refuse (`NotAllowed`) while a limit holds the member's next reset."""
        # Loaded at the first reset: it brings identity's models, which the simulator's start
        # does not need.
        from identity.admin.reset_limits import LONGEST, RULES

        now = self.clock()
        recent = [t for t in self._sent.get(key, []) if t > now - LONGEST.total_seconds()]
        self._sent[key] = recent
        longest, held_by = 0.0, None
        for rule in RULES:
            window = rule.window.total_seconds()
            inside = sorted(t for t in recent if t > now - window)
            if len(inside) >= rule.most:
                until = inside[len(inside) - rule.most] + window - now
                if until > longest:
                    longest, held_by = until, rule
        if held_by is not None:
            seconds = math.ceil(longest)
            raise NotAllowed(
                f"该成员的密码{held_by.zh}：下一次允许在 {seconds} 秒后",
                f"Next allowed in {seconds} s ({held_by.en} for this member)",
            )

    def start(self, key: Key, password: str) -> tuple[str, str]:
        """A new code for `key` (any earlier one for the member is dropped): (reset id, code).
        Refused while a limit holds; counted at once, until `unsent` takes it back."""
        self.wait(key)
        now = self.clock()
        self._pending = {
            i: p for i, p in self._pending.items() if p.key != key and p.expires_at > now
        }
        reset_id = secrets.token_urlsafe(16)
        code = f"{secrets.randbelow(10**6):06d}"
        self._pending[reset_id] = Pending(key, password, code, now + CODE_SECONDS, now)
        self._sent.setdefault(key, []).append(now)
        return reset_id, code

    def unsent(self, reset_id: str) -> None:
        """The code of `reset_id` could not be sent: it neither waits nor counts."""
        found = self._pending.pop(reset_id, None)
        if found is not None and found.made_at in self._sent.get(found.key, []):
            self._sent[found.key].remove(found.made_at)

    def drop(self, reset_id: str) -> None:
        self._pending.pop(reset_id, None)

    def pending(self, reset_id: str, key: Key) -> Pending:
        found = self._pending.get(reset_id)
        if found is None or found.key != key or found.expires_at <= self.clock():
            raise NotAllowed(
                "验证码已失效：请重新发起重置",
                "The code expired or was used: start the reset again",
            )
        return found

    def confirm(self, reset_id: str, key: Key, code: str) -> Pending:
        """The pending reset, once its code is right; burnt then, or after 5 wrong tries."""
        found = self.pending(reset_id, key)
        if not hmac.compare_digest(found.code.encode(), code.strip().encode()):
            found.tries += 1
            left = MAX_TRIES - found.tries
            if left <= 0:
                self.drop(reset_id)
                raise NotAllowed(
                    "验证码错误次数过多：请重新发起重置",
                    "Too many wrong codes: start the reset again",
                )
            raise NotAllowed(
                f"验证码错误，还可尝试 {left} 次", f"The code is wrong: {left} tries left"
            )
        self.drop(reset_id)
        return found
