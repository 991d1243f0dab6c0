"""`identity` commands run as an operator would: the installed entry point, in a folder of the
test's, with only the database and the secret key configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.marketplace_client import SECRET_KEY

IDENTITY = Path(sys.executable).with_name("identity")


def run_cli(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`identity ARGS` run in `cwd` on `database_url`, no other IDENTITY_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env.update(IDENTITY_DATABASE_URL=database_url, IDENTITY_SECRET_KEY=SECRET_KEY)
    return subprocess.run(  # noqa: S603 - our own entry point
        [str(IDENTITY), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
