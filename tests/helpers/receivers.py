"""An app's back-channel logout endpoint, a real HTTP server in a thread of the test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class SlowReceiver:
    """Answers 200 only once `release` is set (every request until then waits for it, up to
    20 s); `arrived` is set by the first request, and each `logout_token` received is kept, in
    the order they arrived, whether or not its sender was still there for the answer."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.tokens: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.tokens += parse_qs(body.decode()).get("logout_token", [])
                outer.arrived.set()
                outer.release.wait(20)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/backchannel"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@contextmanager
def slow_receiver() -> Iterator[SlowReceiver]:
    slow = SlowReceiver()
    try:
        yield slow
    finally:
        slow.release.set()
        slow.server.shutdown()
        slow.server.server_close()
