"""Signature checks of large bodies: one at a time per client address, and the canonical form
in a separate low-priority process.

Anyone can post a body to the callbacks, and refusing a forged one still means reading it,
hashing it and, for the canonical form (§2.3: the marketplace may have signed it), parsing and
re-serialising it. For a body of a megabyte that is tens of milliseconds of CPU, and the C JSON
parser holds the GIL throughout, so a thread would still stall the event loop that serves
members' logins. So:

- a body larger than `INLINE_BYTES` (or of unknown length) from one client address is read and
  checked only after the previous one from that address is done (`turn`): an address flooding
  the callbacks is slowed to the pace of the checks, and its waiting requests hold no body
  (at most `PER_CLIENT` per address and `MAX_LARGE` in all; more are refused at once, unread;
  so a flood from many addresses at once can still crowd out a large real call, which the
  marketplace then retries);
- the signature over the raw body is checked first, here (one HMAC per key, no parsing): a body
  signed as sent never waits for the worker;
- only a large body that fails it goes to the one worker process, started on first use at a
  lower scheduling priority than the service, first come, first served.

Every wait is bounded by `DEADLINE_SECONDS`. A call refused by these bounds is answered `000005`
(retryable). The marketplace's own calls come from its addresses, so a flood from elsewhere
does not hold them up beyond its share of the worker.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from functools import partial

from identity.errors import MarketplaceError
from identity.marketplace.signing import Kind, Verified, match, match_canonical, match_raw

INLINE_BYTES = 32 * 1024
PER_CLIENT = 4
MAX_LARGE = 32
"""Large calls from all addresses together, waiting or being checked: each holds up to a body."""
DEADLINE_SECONDS = 10.0


class VerifierBusy(MarketplaceError):
    """Too many large bodies waiting for the verifier: the caller should retry (000005)."""

    code = "verifier_busy"


def _lower_priority() -> None:
    os.nice(10)


class Verifier:
    def __init__(self, inline_bytes: int = INLINE_BYTES) -> None:
        self.inline_bytes = inline_bytes
        self._running = asyncio.Semaphore(2)  # one computing, one ready: the worker never idles
        self._turns: dict[str, asyncio.Lock] = {}
        self._queued: Counter[str] = Counter()
        self._pool: ProcessPoolExecutor | None = None

    @asynccontextmanager
    async def turn(self, client: str, declared_length: int | None) -> AsyncIterator[None]:
        """Wait until this client address may read and check its large body."""
        if declared_length is not None and declared_length <= self.inline_bytes:
            yield
            return
        if self._queued[client] >= PER_CLIENT or self._queued.total() >= MAX_LARGE:
            raise VerifierBusy("too many large calls at once; retry later")
        self._queued[client] += 1  # waiting or holding the turn
        lock = self._turns.setdefault(client, asyncio.Lock())
        try:
            try:
                async with asyncio.timeout(DEADLINE_SECONDS):
                    await lock.acquire()
            except TimeoutError:
                raise VerifierBusy("the call could not be checked in time; retry later") from None
            try:
                yield
            finally:
                lock.release()
        finally:
            self._queued[client] -= 1
            if not self._queued[client]:
                del self._queued[client]
                del self._turns[client]

    async def match(
        self, kind: Kind, keys: list[str], signature: str, nonce: str, timestamp: str, body: bytes
    ) -> Verified | None:
        if len(body) <= self.inline_bytes:
            return match(kind, keys, signature, nonce, timestamp, body)
        # hashlib lets go of the GIL while it hashes a large buffer: in a thread, the HMACs of
        # a megabyte do not hold up the event loop.
        raw = partial(match_raw, kind, keys, signature, nonce, timestamp, body)
        verified = await asyncio.to_thread(raw)
        if verified is not None:
            return verified
        check = partial(match_canonical, kind, keys, signature, nonce, timestamp, body)
        try:
            async with asyncio.timeout(DEADLINE_SECONDS), self._running:
                return await self._in_worker(check)
        except TimeoutError:
            raise VerifierBusy("the signature could not be checked in time; retry") from None

    async def _in_worker(self, check: Callable[[], Verified | None]) -> Verified | None:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), check)
        except BrokenProcessPool:  # the worker died (killed, out of memory): start anew
            self.close()
            raise

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority,
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
