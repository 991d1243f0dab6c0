"""The operator's commands where things are not as they should be: no database in the folder, a
database never migrated, a folder that cannot be written. Each is one line on stderr and exit
2, and nothing is left behind. Run as processes, as an operator would, in a folder of the
test's with no IDENTITY_* setting but those given."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.helpers.cli import identity
from tests.helpers.servers import free_port

KEY = "k" * 43
READ = [
    ["tenants", "list"],
    ["tenants", "show", "acme"],
    ["clients", "list", "--json"],
    ["clients", "show", "some-client"],
    ["keys", "list"],
]
WRITE = [
    ["clients", "add", "--app", "a", "--name", "n", "--redirect-uri", "https://app.example/cb"],
    ["clients", "remove", "some-client"],
    ["clients", "rotate-secret", "some-client"],
    ["keys", "rotate"],
    ["keys", "revoke", "some-kid"],
]


def one_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("command", READ + WRITE, ids=" ".join)
def test_in_a_folder_without_a_database_a_command_says_so_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    done = identity(tmp_path, *command)
    one_line(done, f"no database at {tmp_path / 'identity.db'}", "identity serve")
    assert list(tmp_path.iterdir()) == []  # no database, no master key


def test_a_configured_database_file_that_is_missing_is_not_created(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'identity.db'}"
    (tmp_path / "data").mkdir()
    for command in (["tenants", "list"], ["clients", "list"]):
        one_line(identity(tmp_path, *command, IDENTITY_DATABASE_URL=url), "no database at")
    assert list((tmp_path / "data").iterdir()) == []


@pytest.mark.parametrize("command", [*READ, WRITE[0]], ids=" ".join)
def test_a_database_never_migrated_needs_identity_migrate(
    tmp_path: Path, command: list[str]
) -> None:
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.commit()
    url = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    done = identity(tmp_path, *command, IDENTITY_DATABASE_URL=url, IDENTITY_SECRET_KEY=KEY)
    one_line(done, "not migrated", "identity migrate")


def test_serve_refuses_a_database_never_migrated(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.commit()
    url = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    port = str(free_port())
    done = identity(
        tmp_path, "serve", "--port", port, IDENTITY_DATABASE_URL=url, IDENTITY_SECRET_KEY=KEY
    )
    one_line(done, "cannot serve", "not migrated", "identity migrate")


def test_a_migrated_embedded_database_without_its_master_key_is_named(tmp_path: Path) -> None:
    assert identity(tmp_path, "migrate", IDENTITY_SECRET_KEY=KEY).returncode == 0
    assert identity(tmp_path, "clients", "list").returncode == 0  # a listing needs no key
    done = identity(tmp_path, *WRITE[0])
    one_line(done, f"the master key {tmp_path / 'identity-secret.key'} is missing")
    assert not (tmp_path / "identity-secret.key").exists()


def test_listing_keys_never_makes_one(tmp_path: Path) -> None:
    assert identity(tmp_path, "migrate", IDENTITY_SECRET_KEY=KEY).returncode == 0
    listed = identity(tmp_path, "keys", "list", "--json", IDENTITY_SECRET_KEY=KEY)
    assert listed.returncode == 0 and listed.stdout.strip() == "[]", listed.stderr
    said = identity(tmp_path, "keys", "list", IDENTITY_SECRET_KEY=KEY)
    assert said.stdout.startswith("no signing keys yet")


def _in_read_only(folder: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`identity COMMAND` in `folder`, which it may not write: made read-only, and, when the
    tests run as root (who writes anywhere), run without the capabilities that override file
    permissions (`setpriv`, util-linux)."""
    folder.chmod(0o555)
    wrapper: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root without setpriv cannot be kept from writing a folder")
        wrapper = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    return identity(folder, *command, wrapper=wrapper, **env)


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (["serve", "--port"], ["cannot keep the master key", "IDENTITY_SECRET_KEY"]),
        (["migrate"], ["cannot keep the master key", "IDENTITY_SECRET_KEY"]),
        (["demo", "--port"], ["cannot keep its state in", "--dir"]),
    ],
    ids=["serve", "migrate", "demo"],
)
def test_a_read_only_folder_is_one_line_naming_the_place_and_the_setting(
    tmp_path: Path, command: list[str], words: list[str]
) -> None:
    ports = [str(free_port())] if command[-1] == "--port" else []
    done = _in_read_only(tmp_path, *command, *ports)
    one_line(done, str(tmp_path), *words)
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_folder_with_the_key_set_names_the_database_file(tmp_path: Path) -> None:
    done = _in_read_only(tmp_path, "migrate", IDENTITY_SECRET_KEY=KEY)
    one_line(done, f"cannot use the database file {tmp_path / 'identity.db'}")
    assert "IDENTITY_DATABASE_URL" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_help_keeps_each_description_whole_and_shows_the_version(tmp_path: Path) -> None:
    shown = identity(tmp_path, "--help", COLUMNS="200")
    assert shown.returncode == 0
    worker = next(line for line in shown.stdout.splitlines() if " worker " in line)
    assert "safe to run as several replicas" in worker  # one line at this width: no hard breaks
    version = identity(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("identity ")
