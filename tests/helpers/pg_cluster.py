"""A PostgreSQL cluster of the test's own (`initdb` and `pg_ctl` in a temporary folder, on a
free port), which the test may stop and start again: never the machine's shared server.

The PostgreSQL programs refuse to run as root; when the tests run as root they run as the
`postgres` OS user, in a folder that user owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.servers import free_port


def binaries() -> Path | None:
    """The folder of `initdb` and `pg_ctl` (the newest installed version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path and shutil.which("initdb") else None


@dataclass
class Cluster:
    bin: Path
    data: Path
    port: int
    user: str | None
    """The OS user the programs run as (None: the test's own)."""

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        argv = [str(self.bin / program), *args]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, cwd=self.data.parent
        )  # noqa: S603
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
        log = str(self.data.parent / "server.log")
        self._run(
            "pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data), "-l", log, "-o", options
        )

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: open connections are ended, as in a failover or restart."""
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.data))

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextmanager
def scratch_cluster() -> Iterator[Cluster]:
    """A new cluster, started; stopped and deleted afterwards. Needs `binaries()`."""
    bin_dir = binaries()
    assert bin_dir is not None, "no PostgreSQL binaries"
    user = "postgres" if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory(prefix="pg-cluster-") as tmp:
        folder = Path(tmp)
        if user:
            entry = pwd.getpwnam(user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        cluster = Cluster(bin_dir, folder / "data", free_port(), user)
        cluster._run(
            "initdb", "-D", str(cluster.data), "-U", "postgres", "-A", "trust", "--no-sync"
        )
        cluster.start()
        try:
            yield cluster
        finally:
            if cluster.running():
                cluster.stop()
