"""Run the real service in separate processes, over real HTTP (tests and benchmarks).

`python -m tests.helpers.servers PORT` serves `create_app(Settings())` on 127.0.0.1:PORT with the
server `identity serve` runs (identity/serving.py); settings come from the `IDENTITY_*`
environment. `ServiceProcesses` starts several of these, waits for `/healthz` and always stops
them again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx2 as httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from identity.db import async_url
from tests.helpers.waiting import until_sync

ROOT = Path(__file__).resolve().parents[2]
METRICS_TOKEN = "metrics-token-for-tests-0123456789"  # noqa: S105 - the tests' token
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@contextmanager
def scratch_postgres(server: str, prefix: str) -> Iterator[str]:
    """A new, empty database `{prefix}_<random>` on the server's URL, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = make_url(async_url(server).replace("+asyncpg", "+psycopg"))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (an `identity serve --workers N`'s workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@asynccontextmanager
async def serving_here(app: Any, **config: Any) -> AsyncIterator[str]:
    """`app` served by uvicorn on a free port of 127.0.0.1, in this event loop; its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", **config)
    )
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[Any], within: float = 30) -> None:
    """Until `url/readyz` answers 200; fails at once if `process` (serving `url`) exits."""

    def ready() -> bool:
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            raise RuntimeError(f"{url} exited with {process.returncode}: {stderr!r}")
        try:
            return httpx.get(f"{url}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    until_sync(ready, f"{url} ready", within=within, every=0.1)


def service_env(
    database_url: str,
    *,
    secret_key: str,
    basic_key: str,
    kit_key: str,
    base_url: str = "https://identity.example.com",
    log_level: str = "WARNING",
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env.update(
        IDENTITY_DATABASE_URL=database_url,
        IDENTITY_SECRET_KEY=secret_key,
        IDENTITY_MARKETPLACE_BASIC_KEY=basic_key,
        IDENTITY_MARKETPLACE_KIT_KEY=kit_key,
        IDENTITY_BASE_URL=base_url,
        IDENTITY_LOG_LEVEL=log_level,
        IDENTITY_ALLOW_LOOPBACK_HTTP="true",  # the simulator and the fakes listen on 127.0.0.1
        IDENTITY_METRICS_TOKEN=METRICS_TOKEN,
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    return env


class ServiceProcesses:
    """N service processes on free ports; a context manager that always kills them."""

    def __init__(
        self,
        count: int,
        env: dict[str, str],
        *,
        startup_timeout: float = 20.0,
        ports: list[int] | None = None,
        argv: Callable[[int], list[str]] | None = None,
        tls: bool = False,
    ):
        """`ports` are chosen in advance when a URL must be known before start (a base URL);
        `argv(port)` runs another program (the simulator) instead of the service; `tls` when
        the processes serve https (the service does with `TEST_TLS_CERTFILE` and
        `TEST_TLS_KEYFILE` in `env`; their certificate is not checked here)."""
        self.count = count
        self.tls = tls
        self.env = env
        self.startup_timeout = startup_timeout
        self._chosen = list(ports or [])
        self._argv = argv or (
            lambda port: [sys.executable, "-m", "tests.helpers.servers", str(port)]
        )
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    @property
    def urls(self) -> list[str]:
        scheme = "https" if self.tls else "http"
        return [f"{scheme}://127.0.0.1:{port}" for port in self.ports]

    def start(self) -> ServiceProcesses:
        try:
            for index in range(self.count):
                port = self._chosen[index] if index < len(self._chosen) else free_port()
                log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
                self._logs.append(log)
                self.processes.append(
                    subprocess.Popen(
                        self._argv(port),
                        env=self.env,
                        cwd=ROOT,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
                self.ports.append(port)
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        pending = list(zip(self.processes, self.urls, self._logs, strict=True))
        with httpx.Client(timeout=1.0, verify=not self.tls) as client:
            while pending:
                for item in list(pending):
                    process, url, log = item
                    if process.poll() is not None:
                        raise RuntimeError(
                            f"service on {url} exited with {process.returncode}:\n{_tail(log)}"
                        )
                    try:
                        if client.get(url + "/healthz").status_code == 200:
                            pending.remove(item)
                    except httpx.TransportError:
                        pass
                if pending and time.monotonic() > deadline:
                    raise RuntimeError(f"service on {pending[0][1]} did not become healthy")
                if pending:
                    time.sleep(0.05)

    def output(self, limit: int | None = 4000) -> list[str]:
        """What each process wrote: its last `limit` characters, or all of it."""
        return [_tail(log, limit) for log in self._logs]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> ServiceProcesses:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _tail(log: IO[bytes], limit: int | None = 4000) -> str:
    """The log so far, read with pread: it leaves alone the file offset the child writes at."""
    if log.closed:
        return ""
    size = os.fstat(log.fileno()).st_size
    text = os.pread(log.fileno(), size, 0).decode(errors="replace")
    return text if limit is None else text[-limit:]


def main() -> None:
    """The server `identity serve` runs (its limits included), on the given port."""
    from identity import serving
    from identity.app import create_app
    from identity.settings import Settings

    port = int(sys.argv[1])
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    app = create_app(settings)
    if os.environ.get("BENCH_CONSTANT_ROUTE"):  # benchmarks: a baseline in the same process

        @app.post("/_bench/constant")
        async def constant() -> dict[str, bool]:
            return {"active": True}

    sockets = serving.listen(settings, "127.0.0.1", port)
    if os.environ.get("TEST_TLS_CERTFILE"):  # an https base URL: `__Host-` cookies
        import uvicorn

        config = uvicorn.Config(
            app,
            ws="none",
            log_level="warning",
            log_config=None,  # uvicorn's lines as JSON, through the app's logging, as in serving
            access_log=False,
            ssl_certfile=os.environ["TEST_TLS_CERTFILE"],
            ssl_keyfile=os.environ["TEST_TLS_KEYFILE"],
        )
        uvicorn.Server(config).run(sockets=sockets)
        return
    serving.run(app, settings, sockets)


if __name__ == "__main__":
    main()
