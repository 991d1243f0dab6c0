"""`--demo-dir`: `identity simulate …` and `identity tenants …` find a running demo's keys,
database and addresses in its folder, as from another terminal; the banner says how."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from identity.cli import app
from identity.simulator import demo
from identity.simulator.scenario import load_scenario
from tests.helpers.demo_process import RunningDemo, identity, running_demo

Terminal = Callable[..., Result]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    """`make demo`'s layout: the demo in ./identity-demo of the folder it was started in."""
    cwd = tmp_path_factory.mktemp("checkout")
    with running_demo(cwd, cwd / "identity-demo") as started:
        yield started


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """Another terminal's folder, with no demo of its own."""
    return tmp_path


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    """`identity ARGS` in this process (a process costs a second of imports), run in a folder
    with no IDENTITY_* variable but `env`."""
    for name in [name for name in os.environ if name.startswith("IDENTITY_")]:
        monkeypatch.delenv(name)

    def run(cwd: Path, *args: str, **env: str) -> Result:
        monkeypatch.chdir(cwd)
        result = CliRunner().invoke(app, list(args), env=env)
        assert result.exception is None or isinstance(result.exception, SystemExit), result
        return result

    return run


def members(terminal: Terminal, running: RunningDemo, cwd: Path) -> dict[str, bool]:
    shown = terminal(cwd, "tenants", "show", "acme", "--demo-dir", str(running.folder))
    assert shown.exit_code == 0, shown.output
    return {m["userName"]: m["enabled"] for m in json.loads(shown.stdout)["members"]}


def test_tenants_list_reads_the_demos_database(
    terminal: Terminal, running: RunningDemo, elsewhere: Path
) -> None:
    # --demo-dir, given, wins over identity's own database setting.
    other = f"sqlite+aiosqlite:///{elsewhere / 'other.db'}"
    folder = str(running.folder)
    listed = terminal(
        elsewhere, "tenants", "list", "--demo-dir", folder, IDENTITY_DATABASE_URL=other
    )
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.split("\t")[:3] == ["t-acme-0001", "acme", "active"]


def test_an_event_command_needs_only_demo_dir(
    terminal: Terminal, running: RunningDemo, elsewhere: Path
) -> None:
    """As a process, from another folder, as the banner's commands are run."""
    assert members(terminal, running, elsewhere)["bob"] is True
    done = identity(
        elsewhere, "simulate", "disable-member", "acme", "bob", "--demo-dir", str(running.folder)
    )
    assert done.returncode == 0, done.stderr
    assert "authSync" in done.stdout and "000000" in done.stdout
    assert members(terminal, running, elsewhere)["bob"] is False


def test_the_provider_commands_read_and_write_the_demos_database(
    terminal: Terminal, running: RunningDemo, elsewhere: Path
) -> None:
    """`clients` and `keys` find the demo as `tenants` does: with --demo-dir from anywhere, and
    with no option in the folder the demo was started in."""
    folder = str(running.folder)
    listed = terminal(elsewhere, "clients", "list", "--json", "--demo-dir", folder)
    assert listed.exit_code == 0, listed.output
    assert [c["name"] for c in json.loads(listed.stdout)] == ["Example ISV app"]
    here = terminal(running.folder.parent, "clients", "list", "--json")
    assert json.loads(here.stdout) == json.loads(listed.stdout)
    assert httpx.get(f"{running.identity}/oauth2/jwks").status_code == 200  # the first key, made
    keys = terminal(elsewhere, "keys", "list", "--json", "--demo-dir", folder)
    assert keys.exit_code == 0 and "active" in [k["state"] for k in json.loads(keys.stdout)]
    added = terminal(
        elsewhere, "clients", "add", "--app", "demo-app", "--name", "Another app",
        "--redirect-uri", "https://another.example/cb", "--json", "--demo-dir", folder,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    client_id = json.loads(added.stdout)["client_id"]
    removed = terminal(elsewhere, "clients", "remove", client_id, "--demo-dir", folder)
    assert removed.exit_code == 0, removed.output
    assert list(elsewhere.iterdir()) == []  # nothing written where the commands ran


def test_in_the_demos_folder_no_option_is_needed(terminal: Terminal, running: RunningDemo) -> None:
    """The banner's commands, run where the demo was started: ./identity-demo is found."""
    cwd = running.folder.parent
    assert "simulate freeze acme\n" in running.banner  # no --demo-dir: the default applies
    done = terminal(cwd, "simulate", "freeze", "acme")
    assert done.exit_code == 0, done.output
    shown = terminal(cwd, "tenants", "show", "acme")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["instances"][0]["status"] == "frozen"
    assert terminal(cwd, "simulate", "unfreeze", "acme").exit_code == 0


def test_keys_set_in_the_environment_win_over_the_default_folder(
    terminal: Terminal, running: RunningDemo
) -> None:
    """identity's own configuration is never mixed with ./identity-demo's keys."""
    done = terminal(
        running.folder.parent, "simulate", "freeze", "acme", "--identity", running.identity,
        IDENTITY_MARKETPLACE_BASIC_KEY="a-basic-key-the-demo-never-had",
    )  # fmt: skip
    assert done.exit_code == 1
    assert "identity refused newInstance: 000001" in done.stderr


def test_reading_the_demo_beside_an_embedded_database_says_so(
    terminal: Terminal, running: RunningDemo, elsewhere: Path
) -> None:
    (elsewhere / "identity-demo").symlink_to(running.folder)
    (elsewhere / "identity.db").touch()  # `identity serve`'s default database
    listed = terminal(elsewhere, "tenants", "list")
    assert listed.exit_code == 0 and "t-acme-0001" in listed.stdout
    assert listed.stderr.startswith("identity: reading the demo's database in ./identity-demo")


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        (["simulate", "disable-member", "acme", "bob"], "keys.json"),
        (["simulate", "freeze", "acme", "--identity", "http://127.0.0.1:9"], "keys.json"),
        (["tenants", "list"], "identity.db"),
        (["tenants", "show", "acme"], "identity.db"),
        (["clients", "list"], "identity.db"),
        (["clients", "show", "some-client"], "identity.db"),
        (["clients", "remove", "some-client"], "identity.db"),
        (["keys", "list"], "identity.db"),
        (["keys", "rotate"], "identity.db"),
    ],
)
def test_a_demo_dir_without_a_demo_is_one_line_and_exit_2(
    terminal: Terminal, tmp_path: Path, command: list[str], missing: str
) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    done = terminal(tmp_path, *command, "--demo-dir", str(empty))
    assert done.exit_code == 2
    assert done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
    assert f"--demo-dir {empty} holds no demo ({missing} is missing)" in done.stderr
    assert f"identity demo --dir {empty}" in done.stderr


def test_the_banner_names_the_folder_when_the_default_would_not_find_it(
    terminal: Terminal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # `terminal` left no IDENTITY_* variable
    lines: list[str] = []
    demo._drive(load_scenario(), Path("identity-demo"), lines.append)
    assert lines[1].endswith(" simulate disable-member acme alice")
    lines.clear()
    demo._drive(load_scenario(), Path("elsewhere"), lines.append)
    assert lines[1].endswith(f" simulate disable-member acme alice --demo-dir {tmp_path}/elsewhere")
    assert lines[3].endswith(f" tenants show acme --demo-dir {tmp_path}/elsewhere")
    lines.clear()
    monkeypatch.setenv("IDENTITY_MARKETPLACE_KIT_KEY", "a-kit-key-configured-here")
    demo._drive(load_scenario(), Path("identity-demo"), lines.append)
    assert lines[2].endswith(f" simulate freeze acme --demo-dir {tmp_path}/identity-demo")


def test_the_banner_runs_identity_as_the_demo_was_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` runs .venv/bin/identity from the checkout: the banner's commands do too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    monkeypatch.setattr("sys.argv", [".venv/bin/identity", "demo"])
    assert demo._program() == ".venv/bin/identity"
    monkeypatch.setattr("sys.argv", ["/usr/lib/python3/identity/cli.py", "demo"])
    assert demo._program().endswith(" -m identity.cli")
    on_path = tmp_path / "bin" / "identity"
    on_path.parent.mkdir()
    on_path.touch(mode=0o755)
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setattr("sys.argv", [str(on_path), "demo"])
    assert demo._program() == "identity"
