"""A round-robin TCP proxy for the load run: the stand-in for nginx in front of two replicas.

    python -m benchmarks.proxy PORT BACKEND_PORT [BACKEND_PORT ...]

Listens on 127.0.0.1:PORT and hands each new connection to the next backend on 127.0.0.1, in
turn, copying bytes both ways until either side closes. It balances connections, not requests:
a keep-alive connection stays with the replica it was given, as with nginx's `upstream` without
`keepalive`. Nothing is parsed or rewritten, so the replicas see the client's requests as sent
(their public URL is the proxy's).
"""

from __future__ import annotations

import asyncio
import itertools
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(port: int, backends: list[int]) -> None:
    turn = itertools.cycle(backends)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", next(turn))
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    port, *backends = (int(a) for a in sys.argv[1:])
    asyncio.run(serve(port, backends))


if __name__ == "__main__":
    main()
