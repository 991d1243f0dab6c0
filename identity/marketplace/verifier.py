"""Signature checks of large bodies, in a separate low-priority process.

Anyone can post a body to the callbacks, and refusing a forged one still means parsing and
canonicalising it (§2.3: the marketplace may have signed the canonical form). For a body of a
megabyte that is tens of milliseconds of CPU, and the C JSON parser holds the GIL throughout, so
a thread would still stall the event loop that serves members' logins. Bodies above
`INLINE_BYTES` are therefore checked by one worker process started on first use, at a lower
scheduling priority than the service, and at most `MAX_PENDING` of them wait for it at once;
past that a large call is answered `000005` (retryable) at once instead of queueing without
bound. Real calls are mostly far below `INLINE_BYTES` and never touch the worker.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from identity.errors import MarketplaceError
from identity.marketplace.signing import Kind, Verified, match

INLINE_BYTES = 32 * 1024
MAX_PENDING = 4


class VerifierBusy(MarketplaceError):
    """Too many large bodies waiting for the verifier: the caller should retry (000005)."""

    code = "verifier_busy"


def _lower_priority() -> None:
    os.nice(10)


class Verifier:
    def __init__(self, inline_bytes: int = INLINE_BYTES, max_pending: int = MAX_PENDING) -> None:
        self.inline_bytes = inline_bytes
        self._pending = asyncio.Semaphore(max_pending)
        self._pool: ProcessPoolExecutor | None = None

    async def match(
        self, kind: Kind, keys: list[str], signature: str, nonce: str, timestamp: str, body: bytes
    ) -> Verified | None:
        if len(body) <= self.inline_bytes:
            return match(kind, keys, signature, nonce, timestamp, body)
        if self._pending.locked():
            raise VerifierBusy("too many large calls at once; retry later")
        async with self._pending:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(
                    self._executor(), match, kind, keys, signature, nonce, timestamp, body
                )
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
