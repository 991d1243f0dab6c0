"""What keeps anonymous load on `/sso` from reaching, or starving, tenants' auth centres.

Anyone can call `/sso/callback/{app}?code=x&tenant=T` and make identity call T's auth centre
with T's client secret, so the edge needs three protections besides the per-call deadline and
size cap in `upstream.py`:

- `Budget`: at most N calls in flight per auth centre (origin of `domainName`), so one slow
  auth centre cannot take the whole shared connection pool and starve every other tenant.
- `Breakers`: after K consecutive transient failures (timeout, unreachable, 5xx) of one auth
  centre, calls to it fail at once for a cool-down, then one trial call is let through
  (half-open). Answers an attacker can cause at will (4xx for a made-up code) never count.
- `Buckets`: token buckets per client address and per tenant for logins and callbacks.

All three live in process memory. They protect, they do not decide anything correctness depends
on, so each replica counting on its own is acceptable: N replicas admit up to N times a limit.
Every table is bounded: budgets and breakers hold only auth centres with calls in flight or
recent failures (their origins come from the directory, not from requests), and the buckets are
an LRU of at most `MAX_KEYS` keys each.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

MAX_KEYS = 10_000
Clock = Callable[[], float]


class NoSlot(Exception):
    """No call slot for this auth centre became free before the call's deadline."""


class CircuitOpen(Exception):
    """The auth centre failed repeatedly; calls to it fail fast until `retry_after` passes."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"circuit open for {retry_after:.1f} s")
        self.retry_after = retry_after


@dataclass
class _Slots:
    semaphore: asyncio.Semaphore
    users: int = 0  # holders and waiters; the entry goes when the last one leaves


class Budget:
    """At most `per_key` concurrent calls per auth centre."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._slots: dict[str, _Slots] = {}

    @asynccontextmanager
    async def slot(self, key: str, deadline: float) -> AsyncIterator[None]:
        """Hold one of `key`'s slots; `NoSlot` when none frees up by `deadline` (loop time)."""
        entry = self._slots.get(key) or self._slots.setdefault(
            key, _Slots(asyncio.Semaphore(self.per_key))
        )
        entry.users += 1
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await entry.semaphore.acquire()
            except TimeoutError:
                raise NoSlot(key) from None
            try:
                yield
            finally:
                entry.semaphore.release()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._slots[key]


@dataclass
class _Circuit:
    failures: int = 0
    open_until: float | None = None
    trial: bool = False  # the one call let through after the cool-down is in flight


class Breakers:
    """One circuit breaker per auth centre: closed, open for `cooldown` seconds after
    `threshold` consecutive transient failures, then half-open for one trial call."""

    def __init__(self, threshold: int, cooldown: float, clock: Clock = time.monotonic) -> None:
        self.threshold, self.cooldown, self.clock = threshold, cooldown, clock
        self._circuits: dict[str, _Circuit] = {}

    def admit(self, key: str) -> bool:
        """May a call go to `key` now? Raises `CircuitOpen` while it may not; returns True
        when this call is the half-open trial (report it with `record(..., trial=True)`)."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.open_until is None:
            return False
        wait = circuit.open_until - self.clock()
        if wait > 0 or circuit.trial:
            raise CircuitOpen(max(wait, 1.0))
        circuit.trial = True
        return True

    def record(self, key: str, answered: bool | None, *, trial: bool) -> None:
        """`answered`: True when the auth centre answered (whatever it said, short of a 5xx),
        False for a transient failure, None when the call never reached it (no slot)."""
        circuit = self._circuits.get(key)
        if trial and circuit is not None:
            circuit.trial = False
        if answered is None:
            return
        if answered:
            self._circuits.pop(key, None)
            return
        circuit = self._circuits.setdefault(key, _Circuit())
        if circuit.open_until is not None and not trial:
            return  # a call started before the circuit opened; the cool-down stands
        circuit.failures += 1
        if trial or circuit.failures >= self.threshold:
            circuit.open_until = self.clock() + self.cooldown


class Buckets:
    """Token buckets: `per_minute` requests a minute per key, in bursts of up to `burst`
    (`per_minute` unless given).

    An LRU of at most `max_keys` keys bounds the memory; an evicted key comes back with a full
    bucket, which only ever errs on the side of letting a request through."""

    def __init__(
        self,
        per_minute: int,
        max_keys: int = MAX_KEYS,
        clock: Clock = time.monotonic,
        burst: int | None = None,
    ) -> None:
        self.capacity = float(burst or per_minute)
        self.rate = per_minute / 60.0
        self.max_keys, self.clock = max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """Take one token: 0 when there was one, else the seconds until there will be."""
        now = self.clock()
        tokens, stamp = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1 if wait == 0 else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def give_back(self, key: str) -> None:
        """Return the token `take` took for a request that turned out not to need limiting."""
        held = self._buckets.get(key)
        if held is not None:
            self._buckets[key] = (min(self.capacity, held[0] + 1), held[1])

    def __len__(self) -> int:
        return len(self._buckets)


def address_key(host: str | None) -> str:
    """The rate-limit key of a client address: IPv6 by its /64 (one subscriber usually holds a
    whole /64, so single addresses would be free for the taking), IPv4 as is."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
