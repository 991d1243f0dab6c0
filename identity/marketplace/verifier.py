"""Canonical-form signature checks of large bodies, in a separate low-priority process.

Anyone can post a body to the callbacks, and refusing a forged one still means parsing and
canonicalising it (§2.3: the marketplace may have signed the canonical form). For a body of a
megabyte that is tens of milliseconds of CPU, and the C JSON parser holds the GIL throughout, so
a thread would still stall the event loop that serves members' logins.

So: the signature over the raw body is checked first, here (one HMAC per key, no parsing), and a
body signed as sent never waits for anything. Only a body that fails it and is larger than
`INLINE_BYTES` goes to the one worker process, started on first use at a lower scheduling
priority than the service. Large bodies wait for it first come, first served, for at most
`DEADLINE_SECONDS`; each client address may have `PER_CLIENT` of them waiting at once and all
addresses together `MAX_WAITING` (each holds its body in memory). Past those bounds, or the
deadline, a call is answered `000005` (retryable): a flood from one address cannot hold up the
marketplace's own large syncs, which come from other addresses.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial

from identity.errors import MarketplaceError
from identity.marketplace.signing import Kind, Verified, match_canonical, match_raw

INLINE_BYTES = 32 * 1024
PER_CLIENT = 2
MAX_WAITING = 32
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
        self._waiting: Counter[str] = Counter()
        self._pool: ProcessPoolExecutor | None = None

    async def match(
        self,
        kind: Kind,
        keys: list[str],
        signature: str,
        nonce: str,
        timestamp: str,
        body: bytes,
        client: str,
    ) -> Verified | None:
        verified = match_raw(kind, keys, signature, nonce, timestamp, body)
        if verified is not None:
            return verified
        if len(body) <= self.inline_bytes:
            return match_canonical(kind, keys, signature, nonce, timestamp, body)
        if self._waiting[client] >= PER_CLIENT or self._waiting.total() >= MAX_WAITING:
            raise VerifierBusy("too many large calls at once; retry later")
        self._waiting[client] += 1
        try:
            async with asyncio.timeout(DEADLINE_SECONDS), self._running:
                return await self._in_worker(
                    partial(match_canonical, kind, keys, signature, nonce, timestamp, body)
                )
        except TimeoutError:
            raise VerifierBusy("the signature could not be checked in time; retry") from None
        finally:
            self._waiting[client] -= 1
            if self._waiting[client] <= 0:
                del self._waiting[client]

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
