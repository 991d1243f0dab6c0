"""What keeps anonymous password guessing from taking the service's CPU.

Every local sign-in or password change checks one Argon2id hash, about 0.1 s of a core and
64 MiB, whoever sends it: unknown accounts verify a dummy hash so that timing tells nothing.
Unbounded, a few anonymous clients keep every core busy and every page slows. Two bounds:

- Per client address, before the try is counted or its hash computed: token buckets with the
  same address rules as `/sso` (identity.sso.limits: the address uvicorn reports, which is
  `X-Forwarded-For`'s when the peer is in `FORWARDED_ALLOW_IPS`; IPv6 by /64),
  `IDENTITY_PASSWORD_TRIES_PER_MINUTE_PER_ADDRESS` a minute in bursts of a third of that (3 of
  the default 10): bursts as large as a minute's tries, from each of a few addresses at once,
  would fill the hashing queue for seconds. Past it: 429 with `Retry-After`. A right password
  gives its token back, and a change refused by the policy computes no hash and takes none, so
  the limit bites on guessing, not on a member who mistypes once or twice. Counted in each
  replica's memory, like `/sso`'s. The refusal is answered a second late (a tarpit), so a
  client that waits for each answer cannot turn cheap refusals into a request flood.
- The hashing itself: at most `IDENTITY_PASSWORD_HASHES_IN_PARALLEL` verifications at once in a
  process (by default one fewer than its CPUs, at least one), so a flood from many addresses
  still leaves a core for everything else. A try that finds no free slot within
  `IDENTITY_PASSWORD_HASH_WAIT_SECONDS` is answered 503 with `Retry-After` at once instead of
  queueing without end; it is refused before it is counted, so it costs the account nothing.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from identity.admin.errors import SignInBusy, TooManyTries
from identity.settings import Settings
from identity.sso.limits import Buckets, Budget, NoSlot

HASHING = "argon2"
REFUSAL_DELAY_SECONDS = 1.0


def spare_cpus() -> int:
    """The CPUs this process may run on, less one left for everything else; at least one."""
    return max(1, len(os.sched_getaffinity(0)) - 1)


class Throttle:
    def __init__(self, per_minute: int, parallel: int, wait_seconds: float) -> None:
        self.per_address = Buckets(per_minute, burst=max(1, per_minute // 3))
        self.hashing = Budget(parallel)
        self.wait_seconds = wait_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> Throttle:
        return cls(
            settings.password_tries_per_minute_per_address,
            settings.password_hashes_in_parallel or spare_cpus(),
            settings.password_hash_wait_seconds,
        )

    async def take(self, address: str) -> None:
        """Count a password try against its client address (its `address_key`);
        `TooManyTries` past the limit, answered only after `REFUSAL_DELAY_SECONDS`: a client
        that waits for each answer before it sends the next (most guessing scripts) then
        costs a few requests a second instead of a thousand, and a sleeping request costs no
        CPU. A person who sees the refusal waits a second longer to read it."""
        wait = self.per_address.take(address)
        if wait:
            await asyncio.sleep(min(wait, REFUSAL_DELAY_SECONDS))
            raise TooManyTries(math.ceil(wait))

    def give_back(self, address: str) -> None:
        """A right password: its try does not count against the address."""
        self.per_address.give_back(address)

    @asynccontextmanager
    async def hashing_slot(self) -> AsyncIterator[None]:
        """Hold one of the process's hashing slots; `SignInBusy` when none frees up in time."""
        deadline = asyncio.get_running_loop().time() + self.wait_seconds
        try:
            async with self.hashing.slot(HASHING, deadline):
                yield
        except NoSlot:
            raise SignInBusy() from None
