"""`identity demo` as a process for the tests, on free ports, `identity` commands run beside it
as another terminal would (without identity's IDENTITY_* environment), and its admin's API
used to put the shared demo back as a test found it."""

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
from urllib.parse import urljoin

import httpx2 as httpx

from tests.helpers.servers import ROOT, free_port
from tests.helpers.simulator_world import login_form

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


def end_sessions(demo: dict[str, str], user_name: str) -> None:
    """The demo's admin ends every session of `user_name`, over the admin API: signed in
    through the marketplace (Flow B) with plain HTTP, as a script would."""
    tenant = demo["account"].split("@")[1]
    with httpx.Client(follow_redirects=True, timeout=30) as http:
        page = http.get(demo["identity"] + "/sso/login", params={"tenant": tenant})
        form = login_form(page.text)
        assert form.action is not None, page.text
        fields = {**form.inputs, "username": demo["account"], "password": demo["password"]}
        landed = http.post(urljoin(str(page.url), form.action), data=fields)
        assert landed.status_code == 200 and landed.url.path == "/sso/me", landed.text
        token = http.get(demo["identity"] + "/sso/session").json()["csrfToken"]
        path = f"/api/admin/members/{user_name}/end-sessions"
        ended = http.post(demo["identity"] + path, headers={"X-CSRF-Token": token})
        assert ended.status_code == 200, ended.text
