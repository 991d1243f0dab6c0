"""`identity simulate` commands against identity running as a real process over real HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from typer.testing import CliRunner

from identity.db import Database
from identity.models import Authorisation, Instance, Member
from identity.simulator.cli import app
from tests.helpers.kit_bodies import count, one
from tests.helpers.marketplace_client import BASIC_KEY, KIT_KEY, SECRET_KEY
from tests.helpers.servers import ROOT, ServiceProcesses, free_port, service_env
from tests.helpers.simulator_world import ACME, APP_ID, submit, world_data
from tests.helpers.waiting import until

runner = CliRunner()


@pytest.fixture(scope="module")
def identity_url(database_url: str, private_key_file: Path) -> Iterator[str]:
    env = service_env(database_url, secret_key=SECRET_KEY, basic_key=BASIC_KEY, kit_key=KIT_KEY)
    env["IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE"] = str(private_key_file)
    with ServiceProcesses(1, env) as service:
        yield service.urls[0]


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(world_data(), ensure_ascii=False), "utf-8")
    return path


@pytest.fixture
def keys_in_env(monkeypatch: pytest.MonkeyPatch, private_key_file: Path) -> None:
    monkeypatch.setenv("IDENTITY_MARKETPLACE_BASIC_KEY", BASIC_KEY)
    monkeypatch.setenv("IDENTITY_MARKETPLACE_KIT_KEY", KIT_KEY)
    monkeypatch.setenv("IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE", str(private_key_file))


async def simulate(*args: str) -> tuple[int, str]:
    """Run a command in a thread: it runs its own event loop, as from a shell."""
    result = await asyncio.to_thread(runner.invoke, app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


async def test_provision_and_events_from_the_command_line(
    identity_url: str, scenario_file: Path, private_key_file: Path, db: Database
) -> None:
    common = ["--scenario", str(scenario_file), "--identity", identity_url]
    keys = ["--basic-key", BASIC_KEY, "--kit-key", KIT_KEY]
    code, output = await simulate(
        "provision", *common, *keys, "--private-key-file", str(private_key_file)
    )
    assert code == 0, output
    assert len(output.splitlines()) == 10 and output.count(" 000000 ") == 10
    assert await count(db, Authorisation) == 4  # acme: alice, bob, carol; beta: alice
    code, output = await simulate("disable-member", "t-acme-0001", "bob", *common, *keys)
    assert code == 0, output
    # Only what was asked: the instance id is looked up without a line of its own.
    assert len(output.splitlines()) == 1 and "authSync" in output and "newInstance" not in output
    bob = await one(db, Authorisation, Authorisation.user_name == "bob")
    assert bob.enabled is False
    code, output = await simulate("freeze", "acme", *common, *keys)
    assert code == 0, output
    assert (await one(db, Instance, Instance.order_id == ACME["order"]["orderId"])).status == (
        "frozen"
    )


async def test_keys_come_from_identitys_environment(
    identity_url: str, scenario_file: Path, keys_in_env: None, db: Database
) -> None:
    code, output = await simulate(
        "provision", "beta", "--scenario", str(scenario_file), "--identity", identity_url
    )
    assert code == 0, output
    assert await count(db, Member) == 1


async def test_a_refusal_exits_non_zero_and_says_why(
    identity_url: str, scenario_file: Path, keys_in_env: None, db: Database
) -> None:
    common = ["--scenario", str(scenario_file), "--identity", identity_url]
    code, output = await simulate("freeze", "acme", *common, "--basic-key", "not-the-key")
    assert code == 1
    assert "error: identity refused newInstance: 000001" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["freeze", "acme", "--identity", "http://127.0.0.1:9"], "unreachable"),
        (["freeze", "nobody"], "no tenant with id or code 'nobody'"),
        (["add-member", "acme", "zoe"], "no member 'zoe'"),
    ],
)
async def test_bad_targets_exit_non_zero(
    scenario_file: Path, keys_in_env: None, args: list[str], message: str
) -> None:
    code, output = await simulate(*args, "--scenario", str(scenario_file))
    assert code == 1
    assert message in output


async def test_the_built_in_scenario_is_the_default(keys_in_env: None) -> None:
    code, output = await simulate(
        "add-member", "acme", "nobody-here", "--identity", "http://127.0.0.1:9"
    )
    assert (code, "tenant acme has no member 'nobody-here'" in output) == (1, True)


async def test_serve_provisions_and_logs_members_in(
    identity_url: str, scenario_file: Path, keys_in_env: None, db: Database
) -> None:
    """`serve --provision` as a process: provisioning over HTTP, then a Flow A login."""
    port = free_port()
    sim_url = f"http://127.0.0.1:{port}"
    program = "from identity.simulator.cli import app; app(prog_name='simulate')"
    command = [sys.executable, "-c", program, "serve", "--port", str(port)]
    command += ["--identity", identity_url, "--scenario", str(scenario_file)]
    with subprocess.Popen(  # noqa: S603 - our own entry point
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        try:
            await _wait_for(lambda: count(db, Authorisation), 4, process)
            async with httpx.AsyncClient(base_url=sim_url) as sim:
                page = await sim.get("/unified-login/portal-login?ind=UNOP&appId=" + APP_ID)
                response = await submit(sim, page, "bob@acme", "bob-pw")
            assert response.status_code == 302
            location = response.headers["location"]
            assert location.startswith(f"{identity_url}/sso/callback/{APP_ID}?code=")
            assert location.endswith(f"&tenant={ACME['tenantId']}")
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=10)
    assert f"auth centre   {sim_url}" in output
    assert output.count("authSync") == 2 and "error" not in output


async def _wait_for(
    read: Callable[[], Awaitable[int]], expected: int, process: subprocess.Popen[str]
) -> None:
    async def provisioned() -> bool:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        return await read() == expected

    await until(provisioned, "the simulator provisions", within=30)


@pytest.mark.parametrize(
    ("options", "base"),
    [
        ([], "http://0.0.0.0:8002"),
        (["--public-url", "https://app.localhost:8443/"], "https://app.localhost:8443"),
    ],
)
def test_the_example_app_is_told_its_address_behind_a_proxy(
    monkeypatch: pytest.MonkeyPatch, options: list[str], base: str
) -> None:
    import uvicorn

    from identity.simulator import example_app

    made: list[tuple[str, ...]] = []
    monkeypatch.setattr(example_app, "create_example_app", lambda *args: made.append(args))
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    argv = ["example-app", "--client-id", "c", "--client-secret", "s", "--host", "0.0.0.0"]
    done = runner.invoke(app, [*argv, *options])
    assert done.exit_code == 0, done.output
    assert made == [("http://127.0.0.1:8000", "c", "s", base, None)]  # no events secret
