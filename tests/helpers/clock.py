"""The clock the tests control: the simulator's auth centre and the client library's token
validator take it in place of the wall clock, so expiry is tested without sleeping."""

from __future__ import annotations

START = 1_800_000_000.0
"""Where every controlled clock starts (seconds since the epoch, in January 2027)."""


class Clock:
    """Seconds since the epoch, moved only by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
