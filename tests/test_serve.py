"""`identity serve` on the embedded default, as `make serve` runs it: a real process, real HTTP."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx

from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SignedCalls
from tests.helpers.servers import free_port, wait_ready

IDENTITY = str(Path(sys.executable).with_name("identity"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env.update(IDENTITY_MARKETPLACE_BASIC_KEY=BASIC_KEY, IDENTITY_MARKETPLACE_KIT_KEY=KIT_KEY)
    return env


@contextmanager
def serving(workdir: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with subprocess.Popen(
        [IDENTITY, "serve", "--port", str(port)],
        cwd=workdir,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as process:
        try:
            wait_ready(url, process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


async def test_serve_migrates_keeps_its_key_and_answers_signed_calls(tmp_path: Path) -> None:
    with serving(tmp_path) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            answer = await SignedCalls(client).basic(
                {"activity": "newInstance", "orderId": "O", "orderLineId": "O-1", "businessId": "b"}
            )
            jwks = await client.get("/oauth2/jwks")
        assert answer["resultCode"] == "000000"
        assert jwks.status_code == 200 and "server" not in jwks.headers  # nothing to tell a scanner
    key_file = tmp_path / "identity-secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    assert len(key) >= 32

    with serving(tmp_path) as url:  # a restart keeps the key and the data
        async with httpx.AsyncClient(base_url=url) as client:
            again = await SignedCalls(client).basic(
                {"activity": "queryInstance", "instanceId": answer["instanceId"]}
            )
        assert again["resultCode"] == "000000"
        # IDENTITY_BASE_URL is not set: the public URL is where the service listens.
        assert again["info"][0]["appInfo"]["frontEndUrl"] == f"{url}/sso/login"
    assert key_file.read_text() == key
    listed = subprocess.run(
        [IDENTITY, "tenants", "list", "--json"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(listed.stdout) == []
