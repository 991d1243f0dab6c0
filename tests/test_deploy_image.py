"""The image's rules, proved without a Docker daemon: deploy/Dockerfile and .dockerignore read
as Docker reads them, and the project's wheel installed the way the image installs it (the
lock's wheels alone, no index, hashes checked) into an empty venv that then serves."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

from identity.cli import app
from identity.settings import DEFAULT_DATABASE_URL, SECRET_KEY_FILE
from tests.helpers.image import (
    DockerIgnore,
    Stage,
    context_files,
    exec_form,
    shell_words,
    stages,
)
from tests.helpers.servers import free_port
from tests.helpers.waiting import until_sync

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
IGNORE = DockerIgnore((ROOT / ".dockerignore").read_text())
LOCK = ROOT / "requirements.lock"
BUILD = ROOT / "requirements-build.lock"
SERVE = ["identity", "serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104
UID = 10001


@pytest.fixture(scope="module")
def builder() -> Stage:
    return stages(DOCKERFILE)[0]


@pytest.fixture(scope="module")
def final() -> Stage:
    return stages(DOCKERFILE)[-1]


def test_every_stage_is_python_311_slim_pinned_by_tag() -> None:
    found = stages(DOCKERFILE)
    assert len(found) >= 2, "a builder stage and a final stage"
    for stage in found:
        image, _, digest = stage.image.partition("@")
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?", image), stage.image
        assert not digest or re.fullmatch(r"sha256:[0-9a-f]{64}", digest), stage.image
    assert found[-1].name is None and found[0].name == "builder"


def test_the_builder_makes_wheels_from_the_lock_with_hashes(builder: Stage) -> None:
    commands = [shell_words(cmd) for run in builder.all("RUN") for cmd in run.split("&&")]
    wheels = [words for words in commands if words[:2] == ["pip", "wheel"]]
    locked = [w for w in wheels if "requirements.lock" in w and "--require-hashes" in w]
    assert locked, "the dependencies' wheels come from the lock, hashes checked"
    assert any("--no-deps" in w and w[-1] == "." for w in wheels), "the project's own wheel"


def test_the_final_stage_installs_those_wheels_alone(final: Stage) -> None:
    assert not final.all("ADD")
    assert all("--from=" in copy for copy in final.all("COPY")), "nothing from the source tree"
    installs = [shell_words(cmd) for run in final.all("RUN") for cmd in run.split("&&")]
    installs = [words for words in installs if "pip" in words and "install" in words]
    assert installs, "the final stage installs the wheels"
    for words in installs:
        assert {"--no-index", "--no-cache-dir"} <= set(words), words
    assert any("--require-hashes" in w and "/wheels/requirements.lock" in w for w in installs)
    for run in final.all("RUN"):
        assert "--mount=type=bind,from=builder" in run, "the wheels stay out of every layer"
        assert not re.search(r"apt-get|apk |gcc|build-essential|curl|wget", run), run


def test_runs_as_a_numeric_user_that_owns_nothing(final: Stage) -> None:
    user = final.last("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) == UID and (not gid or gid.isdigit()), user
    keywords = [keyword for keyword, _ in final.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :], "nothing runs as the user to own"
    text = " ".join(final.all("RUN") + final.all("COPY"))
    assert "chown" not in text and f"-o {UID}" not in text, "every file stays root's"


def test_the_data_volume_is_the_working_directory(final: Stage) -> None:
    """The embedded default's database and key are named relative to the working directory, so
    with WORKDIR on the volume nothing else needs writing (read-only root filesystem)."""
    assert final.last("WORKDIR") == final.last("VOLUME") == "/data"
    assert DEFAULT_DATABASE_URL.endswith(":///./identity.db") and "/" not in SECRET_KEY_FILE
    assert "install -d -o root -g 10001 -m 0770 /data" in final.last("RUN")


def test_the_default_command_serves_and_the_healthcheck_asks_healthz(final: Stage) -> None:
    assert exec_form(final.last("CMD")) == SERVE and final.last("EXPOSE") == "8000"
    options, _, command = final.last("HEALTHCHECK").partition(" CMD ")
    assert re.search(r"--interval=\d+s", options) and re.search(r"--timeout=\d+s", options)
    argv = exec_form(command)
    assert argv[:2] == ["python", "-c"] and "http://127.0.0.1:8000/healthz" in argv[2]


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_cli.py",
        "tests/rp/node_modules/openid-client/package.json",
        "node_modules/x/index.js",
        "identity-demo/keys.json",
        "identity-demo/seller-private-key.pem",
        "identity.db",
        "identity.db-wal",
        "identity-secret.key",
        ".env",
        "identity/.env",
        "identity/identity-secret.key",
        "identity/seller-private-key.pem",
        "migrations/identity.db",
        "migrations/identity.db-journal",
        "identity/__pycache__/cli.cpython-311.pyc",
        "deploy/kubernetes/secret.example.yaml",
        "benchmarks/login.py",
        "README.md",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert IGNORE.excludes(path)


def test_the_context_holds_what_the_builder_copies_and_nothing_else(builder: Stage) -> None:
    copied = [word for copy in builder.all("COPY") for word in shell_words(copy)[:-1]]
    sent = context_files(ROOT, IGNORE)
    for source in copied:
        assert any(path == source or path.startswith(source + "/") for path in sent), source
    for path in sent:
        assert any(path == s or path.startswith(s + "/") for s in copied), f"{path} is sent"


def test_version_prints_the_package_version() -> None:
    shown = CliRunner().invoke(app, ["--version"])
    assert shown.exit_code == 0 and shown.output == f"identity {metadata.version('identity')}\n"


def _env() -> dict[str, str]:
    """No IDENTITY_* or PYTHON* variable: nothing from this checkout or its settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDENTITY_", "PYTHON"))}
    return env | {"PYTHONDONTWRITEBYTECODE": "1"}  # as the image sets it


def _process(argv: list[str | Path], cwd: Path | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own tools
        [str(a) for a in argv], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120
    )


def _run(*argv: str | Path, cwd: Path | None = None) -> str:
    done = _process(list(argv), cwd)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    return done.stdout


def _healthy(argv: list[str | Path]) -> bool:
    return _process(argv, None).returncode == 0


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, builder: Stage) -> Path:
    """A venv holding the project's wheel and the lock's wheels alone, as in the final stage:
    the wheel built from what the builder copies by the locked build backend, the lock's wheels
    fetched with hashes checked (pip's cache holds them after `make install-test`), then
    installed from no index."""
    work = tmp_path_factory.mktemp("image")
    source, wheels, build, venv = (work / name for name in ("src", "wheels", "build", "venv"))
    for copy in builder.all("COPY"):
        for name in shell_words(copy)[:-1]:
            _copy_context(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    _run(*pip, "download", "--require-hashes", "--only-binary=:all:", "-r", LOCK, "-d", wheels)
    _run(sys.executable, "-m", "venv", "--without-pip", build)
    _run(*pip, "--python", build / "bin" / "python", "install", "--require-hashes", "-r", BUILD)
    built = ["wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source]
    _run(*pip, "--python", build / "bin" / "python", *built)
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    into = [*pip, "--python", venv / "bin" / "python", "install", "--no-index", "--no-cache-dir"]
    _run(*into, "--find-links", wheels, "--require-hashes", "-r", LOCK)
    _run(*into, "--no-deps", *wheels.glob("identity-*.whl"))
    return venv


def _copy_context(path: Path, to: Path) -> None:
    """`path`, less what .dockerignore keeps out of the build context."""
    to.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        shutil.copy2(path, to)
        return
    for name in context_files(path, IGNORE, under=path.relative_to(ROOT).as_posix()):
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path / name, to / name)


def _files(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")}


def test_the_wheel_on_the_locked_versions_alone_migrates_serves_and_is_healthy(
    installed: Path, tmp_path: Path
) -> None:
    """Run as the image runs: from the data folder, writing nothing but the database and the
    key there (the venv stays as installed: a read-only root would do); HEALTHCHECK's own
    command passes while it serves, and fails once it has stopped."""
    python, identity = installed / "bin" / "python", installed / "bin" / "identity"
    assert _run(identity, "--version") == f"identity {metadata.version('identity')}\n"
    where = _run(python, "-c", "import identity; print(identity.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(installed)
    listed = "import importlib.metadata as m; [print(d.name, d.version) for d in m.distributions()]"
    shown = {tuple(line.split()) for line in _run(python, "-c", listed).splitlines()}
    locked = re.findall(r"^([a-z0-9._-]+)==(\S+)", LOCK.read_text(), re.MULTILINE)
    normal = {(re.sub(r"[-_.]+", "-", name).lower(), version) for name, version in shown}
    assert normal == {*locked, ("identity", metadata.version("identity"))}

    before = _files(installed)
    port = free_port()
    health = exec_form(stages(DOCKERFILE)[-1].last("HEALTHCHECK").partition(" CMD ")[2])
    health: list[str | Path] = [python, health[1], health[2].replace(":8000/", f":{port}/")]
    argv = [identity, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(argv, cwd=tmp_path, env=_env(), stdout=log, stderr=log)  # noqa: S603

        def healthy() -> bool:
            if server.poll() is not None:
                log.seek(0)
                raise AssertionError(f"identity serve exited: {log.read().decode()[-2000:]}")
            return _healthy(health)

        try:
            until_sync(healthy, "the healthcheck", within=30, every=0.2)
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert not _healthy(health)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["identity-secret.key", "identity.db"]
    assert _files(installed) == before
