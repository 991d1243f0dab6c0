"""SIGTERM, as an orchestrator sends it before a pod goes: `identity serve` lets a request under
way finish and answer, and `identity worker` finishes the back-channel logout it is sending,
records it, and leaves nothing leased. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import insert, select

from identity.db import Database, utcnow
from identity.models import LogoutDelivery
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY
from tests.helpers.receivers import SlowReceiver, slow_receiver
from tests.helpers.servers import ROOT, free_port, wait_ready

KEY = "0123456789abcdef0123"


def _env(database_url: str, **more: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    return {
        **clean,
        "PYTHONPATH": str(ROOT),
        "IDENTITY_DATABASE_URL": database_url,
        "IDENTITY_SECRET_KEY": KEY,
        "IDENTITY_MARKETPLACE_BASIC_KEY": BASIC_KEY,
        "IDENTITY_MARKETPLACE_KIT_KEY": KIT_KEY,
        **more,
    }


def test_serve_lets_a_request_under_way_finish(database_url: str, tmp_path: Path) -> None:
    """The body of a marketplace call is still arriving when SIGTERM comes: the call is
    answered all the same (here `000001`: its signature is made up), and only then does the
    process end, by the signal it was sent (uvicorn raises it again once it has stopped)."""
    port = free_port()
    argv = [sys.executable, "-m", "identity.cli", "serve", "--port", str(port)]
    with subprocess.Popen(
        argv, env=_env(database_url), cwd=tmp_path, stderr=subprocess.PIPE, text=True
    ) as server:
        try:
            wait_ready(f"http://127.0.0.1:{port}", server)
            body = b'{"activity":"newInstance"}'
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                stamp = int(time.time() * 1000)
                query = f"signature={'ab' * 32}&timestamp={stamp}&nonce={uuid4().hex}"
                head = (
                    f"POST /koogallery?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                conn.sendall(head.encode() + body[:5])
                time.sleep(0.5)  # the request is under way: head read, body incomplete
                server.send_signal(signal.SIGTERM)
                time.sleep(0.5)
                assert server.poll() is None, "serve ended with a request under way"
                conn.sendall(body[5:])
                received = b""
                while chunk := conn.recv(65536):  # the answer, then the server closes
                    received += chunk
                answer = received.decode()
            assert answer.startswith("HTTP/1.1 200"), answer
            assert '"resultCode":"000001"' in answer.replace(" ", "")
            assert server.wait(timeout=20) in (0, -signal.SIGTERM)
        finally:
            if server.poll() is None:
                server.kill()


@pytest.fixture
def receiver() -> Iterator[SlowReceiver]:
    with slow_receiver() as slow:
        yield slow


async def test_the_worker_finishes_the_logout_it_is_sending(
    database_url: str, db: Database, receiver: SlowReceiver, tmp_path: Path
) -> None:
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            insert(LogoutDelivery).values(
                client_id="c1", uri=receiver.url, sid="s1", tenant_id="t1", user_name="u1",
                created_at=now, attempts=0, next_attempt_at=now - timedelta(seconds=1),
            )
        )  # fmt: skip
    env = _env(database_url, IDENTITY_BACKCHANNEL_POLL_SECONDS="0.2")
    argv = [sys.executable, "-m", "identity.cli", "worker"]
    with subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True) as worker:
        try:
            assert receiver.arrived.wait(30), "the worker never sent the logout"
            worker.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            receiver.release.set()  # the app answers only after the worker was told to stop
            assert worker.wait(timeout=20) == 0
            output = worker.stdout.read() if worker.stdout else ""
        finally:
            if worker.poll() is None:
                worker.kill()
    async with db.read() as session:
        delivered, claimed, attempts = (
            await session.execute(
                select(
                    LogoutDelivery.delivered_at,
                    LogoutDelivery.claimed_until,
                    LogoutDelivery.attempts,
                )
            )
        ).one()
    assert delivered is not None and claimed is None and attempts == 1
    assert '"worker.stopped"' in output
