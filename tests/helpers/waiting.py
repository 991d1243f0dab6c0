"""Waiting for something to happen by asking until it has, or failing at a deadline: a test
never sleeps a fixed time in the hope that something happened meanwhile."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def until(
    check: Callable[[], bool | Awaitable[bool]], what: str, *, within: float = 10.0
) -> None:
    """Ask `check` (plain or async) every 50 ms until it says yes; fail after `within` s."""
    deadline = time.monotonic() + within
    while True:
        answer = check()
        if await answer if inspect.isawaitable(answer) else answer:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.05)


def until_sync(
    check: Callable[[], bool], what: str, *, within: float = 10.0, every: float = 0.05
) -> None:
    """`until` for synchronous tests (the Chromium ones), asking every `every` s."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s")
        time.sleep(every)
