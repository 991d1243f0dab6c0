"""The load run's own parts (benchmarks/proxy.py and the verdict of benchmarks/load.py): a load
figure is only as good as the proxy that spread it and the check that judged it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from benchmarks import proxy
from benchmarks.load import verdicts
from tests.helpers.servers import free_port


@contextlib.asynccontextmanager
async def backend(name: bytes) -> AsyncIterator[int]:
    """A TCP server that answers each line with its name and the line, until the client
    closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(name + b":" + line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def listening(port: int) -> None:
    """Once the proxy accepts: one connection, closed at once."""
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"nothing listens on {port}")


async def ask(port: int, lines: list[bytes]) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    for line in lines:
        writer.write(line)
        await writer.drain()
        answers.append(await asyncio.wait_for(reader.readline(), 5))
    writer.close()
    return answers


async def test_the_proxy_gives_each_connection_to_the_next_backend_and_keeps_it_there() -> None:
    async with backend(b"a") as a, backend(b"b") as b:
        port = free_port()
        serving = asyncio.create_task(proxy.serve(port, [a, b]))
        try:
            await listening(port)  # that probe took backend a; the next ones alternate from b
            answers = [await ask(port, [b"one\n", b"two\n"]) for _ in range(4)]
        finally:
            serving.cancel()
    assert answers == [
        [b"b:one\n", b"b:two\n"],
        [b"a:one\n", b"a:two\n"],
        [b"b:one\n", b"b:two\n"],
        [b"a:one\n", b"a:two\n"],
    ]


async def test_the_proxy_closes_a_connection_whose_backend_is_down() -> None:
    port, dead = free_port(), free_port()
    serving = asyncio.create_task(proxy.serve(port, [dead]))
    try:
        await listening(port)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        serving.cancel()


def result(**changes: Any) -> dict[str, Any]:
    return {
        "errors": 0,
        "rss_start_mb": 400.0,
        "rss_end_mb": 500.0,
        "outbox_pending_end": 0,
        "logouts_missing": 0,
    } | changes


def test_a_run_that_meets_every_target_has_no_verdict() -> None:
    assert verdicts(result()) == []


def test_each_missed_target_is_named() -> None:
    assert verdicts(result(errors=3)) == ["3 errors (target 0)"]
    assert verdicts(result(rss_end_mb=500.1)) == ["RSS grew 400.0 -> 500.1 MiB (> 1.25x)"]
    assert verdicts(result(outbox_pending_end=2)) == ["2 logouts undelivered, 0 not received"]
    assert verdicts(result(logouts_missing=1)) == ["0 logouts undelivered, 1 not received"]
    assert len(verdicts(result(errors=1, rss_end_mb=900.0, logouts_missing=1))) == 3
