"""`--demo-dir`: `identity tenants …` finds a running demo's database in its folder, as from
another terminal."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from identity.cli import app
from tests.demo_process import RunningDemo, running_demo

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
        (["tenants", "list"], "identity.db"),
        (["tenants", "show", "acme"], "identity.db"),
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
