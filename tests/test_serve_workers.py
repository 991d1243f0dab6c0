"""`identity serve --workers N`: N processes answer on one port; one that dies is replaced and
the port keeps answering; SIGTERM stops them all. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

from identity.workers import default_count
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY
from tests.helpers.servers import ROOT, children, free_port, wait_ready


def until(check: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.1)


def answers(base: str, times: int) -> list[int]:
    """Status codes of `times` requests, each on a new connection (the kernel hands each new
    connection to one worker)."""
    codes = []
    for _ in range(times):
        with httpx.Client(timeout=10) as http:
            codes.append(http.get(base + "/healthz").status_code)
    return codes


def test_workers_share_the_port_one_that_dies_is_replaced_and_sigterm_stops_all(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env = clean | {
        "PYTHONPATH": str(ROOT),
        "IDENTITY_DATABASE_URL": database_url,
        "IDENTITY_SECRET_KEY": "0123456789abcdef0123",
        "IDENTITY_MARKETPLACE_BASIC_KEY": BASIC_KEY,
        "IDENTITY_MARKETPLACE_KIT_KEY": KIT_KEY,
    }
    argv = [sys.executable, "-m", "identity.cli", "serve", "--port", str(port), "--workers", "2"]
    with subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as server:
        try:
            wait_ready(base, server)
            until(lambda: len(children(server.pid)) == 2)
            first = children(server.pid)
            assert answers(base, 20) == [200] * 20

            victim = min(first)
            os.kill(victim, signal.SIGKILL)
            until(lambda: len(children(server.pid) - {victim}) == 2)
            replaced = children(server.pid)
            assert victim not in replaced and max(first) in replaced
            assert answers(base, 20) == [200] * 20

            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=30) == 0
            assert not children(server.pid)
            output = server.stdout.read() if server.stdout else ""
            assert "workers      2 processes" in output
            assert "serve.worker_exited" in output  # the one killed, logged
        finally:
            if server.poll() is None:
                server.kill()


def test_the_default_count_is_the_cores_within_the_cgroup_quota(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    assert default_count(tmp_path / "absent") == cores
    quota.write_text("max 100000\n")
    assert default_count(quota) == cores
    quota.write_text("50000 100000\n")  # half a core: still one worker
    assert default_count(quota) == 1
    quota.write_text(f"{100000 * (cores + 8)} 100000\n")  # more than the cores: the cores
    assert default_count(quota) == cores
    quota.write_text("garbage\n")
    assert default_count(quota) == cores
