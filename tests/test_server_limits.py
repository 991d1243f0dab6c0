"""`identity serve` as a process on the embedded default, spoken to over raw sockets: what one
client can make the server hold, the metrics port, and the files it creates."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY
from tests.helpers.servers import free_port, wait_ready

IDENTITY = str(Path(sys.executable).with_name("identity"))
HEAD_TIMEOUT, BODY_TIMEOUT = 1.0, 1.5
MIB = 1024 * 1024


@dataclass
class Served:
    url: str
    port: int
    metrics_port: int
    pid: int
    workdir: Path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return env | {
        "IDENTITY_MARKETPLACE_BASIC_KEY": BASIC_KEY,
        "IDENTITY_MARKETPLACE_KIT_KEY": KIT_KEY,
        **extra,
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One `identity serve` for the module, with timeouts short enough to wait for."""
    workdir = tmp_path_factory.mktemp("serve")
    port, metrics_port = free_port(), free_port()
    env = _env(
        IDENTITY_REQUEST_HEAD_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
        IDENTITY_REQUEST_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        IDENTITY_METRICS_PORT=str(metrics_port),
    )
    argv = [IDENTITY, "serve", "--port", str(port)]
    with subprocess.Popen(argv, cwd=workdir, env=env, stderr=subprocess.PIPE) as process:
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, process)
            yield Served(url, port, metrics_port, process.pid, workdir)
        finally:
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def connection(served: Served, timeout: float = 5.0) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", served.port), timeout=timeout) as sock:
        yield sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes; (bytes, seconds). Fails if it never does."""
    started, received = time.monotonic(), b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass  # closed with our unread bytes pending: a reset instead of a FIN
    except TimeoutError:
        pytest.fail(f"the server kept the connection open; it sent {received[:80]!r}")
    return received, time.monotonic() - started


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body, on a connection that stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def rss_bytes(pid: int) -> int:
    fields = Path(f"/proc/{pid}/status").read_text().split("\n")
    kib = next(line.split()[1] for line in fields if line.startswith("VmRSS:"))
    return int(kib) * 1024


def get(path: str, *headers: bytes) -> bytes:
    return b"\r\n".join([f"GET {path} HTTP/1.1".encode(), b"Host: x", *headers, b"", b""])


def test_a_100_kb_header_line_is_refused_with_431(served: Served) -> None:
    with connection(served) as sock:
        try:
            sock.sendall(get("/healthz", b"X-Big: " + b"a" * 100_000))
        except (BrokenPipeError, ConnectionResetError):
            return  # closed before we finished sending: refused too
        received, _ = read_until_closed(sock)
    assert received == b"" or received.startswith(b"HTTP/1.1 431 "), received[:80]


def test_a_head_just_under_64_kib_is_served(served: Served) -> None:
    with connection(served) as sock:
        sock.sendall(get("/healthz", b"X-Big: " + b"a" * 60_000))
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_an_endless_header_is_not_buffered(served: Served) -> None:
    before = rss_bytes(served.pid)
    with connection(served) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        try:
            for _ in range(40):
                sock.sendall(b"a" * MIB)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and closed: what we want
        time.sleep(0.3)
        grown = rss_bytes(served.pid) - before
    assert grown < 8 * MIB, f"RSS grew by {grown / MIB:.0f} MiB"


def test_half_a_head_then_silence_is_closed_after_the_head_timeout(served: Served) -> None:
    with connection(served) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        received, waited = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 "), received[:80]
    assert HEAD_TIMEOUT * 0.9 <= waited < HEAD_TIMEOUT + 2


def test_a_head_sent_byte_by_byte_is_cut_off_at_the_head_timeout(served: Served) -> None:
    """The deadline runs from the first byte: trickling does not extend it."""
    request = get("/healthz", b"X-Slow: " + b"a" * 100)
    with connection(served) as sock:
        started = time.monotonic()
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received, _ = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 "), received[:80]
    assert time.monotonic() - started < HEAD_TIMEOUT + 2


def test_a_connection_that_sends_nothing_is_closed(served: Served) -> None:
    with connection(served) as sock:
        received, waited = read_until_closed(sock)
    assert received == b""
    assert HEAD_TIMEOUT * 0.9 <= waited < HEAD_TIMEOUT + 2


def test_a_slow_body_is_cut_off_after_the_body_timeout(served: Served) -> None:
    with connection(served) as sock:
        # Well-formed signing values, so the callback goes on to read the body.
        query = f"timestamp={int(time.time() * 1000)}&nonce={'a' * 32}&signature={'b' * 64}"
        head = f"POST /koogallery?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(head.encode())
        started = time.monotonic()
        try:
            for _ in range(100):  # one byte every 0.1 s: alive, but far too slow
                sock.sendall(b"{")
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received, _ = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 "), received[:80]
    assert BODY_TIMEOUT * 0.9 <= time.monotonic() - started < BODY_TIMEOUT + 2


def test_a_whole_head_and_then_no_body_is_cut_off_after_the_body_timeout(served: Served) -> None:
    """The head arrives in one read and needs no deadline of its own; the body's starts then."""
    query = f"timestamp={int(time.time() * 1000)}&nonce={'a' * 32}&signature={'b' * 64}"
    head = f"POST /koogallery?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
    with connection(served) as sock:
        sock.sendall(head.encode())
        received, waited = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 "), received[:80]
    assert BODY_TIMEOUT * 0.9 <= waited < BODY_TIMEOUT + 2


def test_requests_in_time_are_served_and_keep_alive_works(served: Served) -> None:
    body = b'{"activity": "queryInstance", "instanceId": "x"}'
    post = b"POST /koogallery HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    with connection(served) as sock:
        for _ in range(3):  # one connection throughout
            sock.sendall(get("/healthz"))
            assert read_response(sock).startswith(b"HTTP/1.1 200 ")
            sock.sendall(post[:20])  # a head in pieces, within its time
            time.sleep(HEAD_TIMEOUT / 3)
            sock.sendall(post[20:])
            time.sleep(BODY_TIMEOUT / 3)
            sock.sendall(body)
            answer = read_response(sock)
            assert answer.startswith(b"HTTP/1.1 200 ") and b"resultCode" in answer
        # An idle keep-alive connection between requests is uvicorn's keep-alive timeout's.
        time.sleep(HEAD_TIMEOUT * 1.5)
        sock.sendall(get("/healthz"))
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_metrics_answer_on_the_metrics_port_only(served: Served) -> None:
    metrics = f"http://127.0.0.1:{served.metrics_port}"
    scraped = httpx.get(f"{metrics}/metrics")
    assert scraped.status_code == 200
    assert "identity_sso_logins_total" in scraped.text
    assert httpx.get(f"{metrics}/healthz").status_code == 404
    assert httpx.get(f"{served.url}/metrics").status_code == 404


def test_the_database_and_its_wal_files_are_private(served: Served) -> None:
    names = ["identity.db", "identity.db-wal", "identity.db-shm", "identity-secret.key"]
    modes = {name: stat.S_IMODE((served.workdir / name).stat().st_mode) for name in names}
    assert modes == dict.fromkeys(names, 0o600)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"IDENTITY_MARKETPLACE_KIT_KEY": BASIC_KEY},
            "IDENTITY_MARKETPLACE_BASIC_KEY and IDENTITY_MARKETPLACE_KIT_KEY must differ",
        ),
        (
            {"IDENTITY_MARKETPLACE_KIT_KEY_PREVIOUS": "short-key"},
            "IDENTITY_MARKETPLACE_KIT_KEY_PREVIOUS must be at least 16 characters",
        ),
    ],
)
def test_serve_refuses_bad_keys_in_one_line(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    done = subprocess.run(
        [IDENTITY, "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode != 0
    assert done.stderr.strip() == f"identity: invalid settings: {message}"
    assert not (tmp_path / "identity.db").exists()  # refused before anything was created
