"""`identity` commands run as an operator would: the installed entry point, in a folder of the
test's, with only the database and the secret key configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.helpers.marketplace_client import SECRET_KEY
from tests.helpers.servers import ROOT

IDENTITY = Path(sys.executable).with_name("identity")


def run_cli(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`identity ARGS` run in `cwd` on `database_url`, no other IDENTITY_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env.update(IDENTITY_DATABASE_URL=database_url, IDENTITY_SECRET_KEY=SECRET_KEY)
    return subprocess.run(  # noqa: S603 - our own entry point
        [str(IDENTITY), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )


def cli_json(database_url: str, cwd: Path, *args: str) -> Any:
    """`identity ARGS --json` as `run_cli` runs it, which must succeed: its output, parsed."""
    done = run_cli(database_url, cwd, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


KEY = "0123456789abcdef0123"


def identity(
    tmp_path: Path, *args: str, timeout: float = 60, wrapper: Sequence[str] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    """`identity ARGS` run in `tmp_path` with no IDENTITY_* setting but `env`, through the
    `wrapper` command when given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    return subprocess.run(  # noqa: S603 - our own entry point
        [*wrapper, sys.executable, "-m", "identity.cli", *args],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_naming(done: subprocess.CompletedProcess[str], setting: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and setting in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout
