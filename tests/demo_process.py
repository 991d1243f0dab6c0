"""`identity demo` as a process for the tests, on free ports, and `identity` commands run beside
it as another terminal would: without identity's IDENTITY_* environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.servers import ROOT, free_port

IDENTITY = [sys.executable, "-m", "identity.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any IDENTITY_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    return env | {"PYTHONPATH": str(ROOT)} | extra


def identity(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """One `identity` command run in `cwd`, its IDENTITY_* environment only `env`."""
    argv = [*IDENTITY, *args]
    return subprocess.run(  # noqa: S603 - our own entry point
        argv, env=clean_env(**env), cwd=cwd, capture_output=True, text=True, timeout=60
    )


@dataclass(frozen=True)
class RunningDemo:
    folder: Path
    banner: str
    identity: str


@contextmanager
def running_demo(cwd: Path, folder: Path) -> Iterator[RunningDemo]:
    """`identity demo --dir folder` started in `cwd`, up until its banner's last line; stopped
    (with its children, one process group) afterwards."""
    port, sim_port, app_port = free_port(), free_port(), free_port()
    argv = [*IDENTITY, "demo", "--dir", str(folder)]
    argv += ["--port", str(port), "--sim-port", str(sim_port), "--app-port", str(app_port)]
    process = subprocess.Popen(  # noqa: S603 - our own entry point
        argv,
        env=clean_env(IDENTITY_LOG_LEVEL="WARNING"),
        cwd=cwd,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    printed: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            printed.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        banner = "".join(printed)
        assert banner.endswith("Press Ctrl-C to stop.\n"), banner
        yield RunningDemo(folder, banner, f"http://127.0.0.1:{port}")
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
