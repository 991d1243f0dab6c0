"""Start-up as an operator meets it: every misconfiguration is one line on stderr
naming the setting, exit status 2, never a traceback; an unreachable database does not stop
`serve`, and a failing request is one JSON log line; `serve` says where it listens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from identity.settings import Settings
from tests.helpers.cli import KEY, identity, one_line_naming
from tests.helpers.servers import ROOT, free_port

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nowhere"


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"IDENTITY_DATABASE_URL": UNREACHABLE}, "IDENTITY_SECRET_KEY"),
        ({"IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE": "/no/such.pem"}, "PRIVATE_KEY_FILE"),
        ({"IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE": "/etc/hostname"}, "PRIVATE_KEY_FILE"),
        ({"IDENTITY_SECRET_KEY": "short"}, "IDENTITY_SECRET_KEY"),
        ({"IDENTITY_NONCE_TTL_SECONDS": "30"}, "IDENTITY_NONCE_TTL_SECONDS"),
        ({"IDENTITY_SESSION_COOKIE_SECURE": "maybe"}, "IDENTITY_SESSION_COOKIE_SECURE"),
        ({"IDENTITY_ALLOWED_REDIRECT_ORIGINS": "https://a.example"}, "ALLOWED_REDIRECT_ORIGINS"),
        ({"IDENTITY_LOG_LEVEL": "LOUD"}, "IDENTITY_LOG_LEVEL"),
        ({"IDENTITY_TIME_ZONE": "Mars/Olympus"}, "IDENTITY_TIME_ZONE"),
        ({"IDENTITY_MARKETPLACE_AK": "HPUAXXXXXXXXXXXXXXXX"}, "IDENTITY_MARKETPLACE_SK"),
        ({"IDENTITY_MARKETPLACE_API_URL": "http://mkt.example"}, "IDENTITY_MARKETPLACE_API_URL"),
        (
            {"IDENTITY_MARKETPLACE_API_URL": "https://mkt.example/api"},
            "IDENTITY_MARKETPLACE_API_URL",
        ),
        ({"IDENTITY_MARKETPLACE_API_TIMEOUT_SECONDS": "0"}, "MARKETPLACE_API_TIMEOUT_SECONDS"),
        (
            {"IDENTITY_MARKETPLACE_BASIC_KEY": KEY, "IDENTITY_MARKETPLACE_KIT_KEY": KEY},
            "IDENTITY_MARKETPLACE_KIT_KEY",
        ),
    ],
)
def test_a_misconfiguration_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], setting: str
) -> None:
    one_line_naming(identity(tmp_path, "serve", "--port", str(free_port()), **env), setting)


def pem_file(folder: Path, key: PrivateKeyTypes, password: bytes | None = None) -> Path:
    """`key` as the PEM file `IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE` names."""
    path = folder / "seller.pem"
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return path


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("rsa-2048", "holds a 2048-bit RSA key; at least 3072 bits are needed"),
        ("ec", "does not hold an RSA private key"),
        ("encrypted", "holds an encrypted private key; it must be unencrypted"),
    ],
)
def test_a_seller_key_that_cannot_be_used_is_one_line_and_exit_2(
    tmp_path: Path, private_key: rsa.RSAPrivateKey, kind: str, problem: str
) -> None:
    """The marketplace takes no public key under 3072 bits, and identity decrypts with RSA
    only: with any other key no app credential can work, so the start stops there."""
    key: PrivateKeyTypes = private_key  # 3072 bits, encrypted below
    if kind == "rsa-2048":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    path = pem_file(tmp_path, key, b"pass phrase" if kind == "encrypted" else None)
    port = str(free_port())
    done = identity(
        tmp_path, "serve", "--port", port, IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE=str(path)
    )
    setting = "IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE"
    one_line_naming(done, setting)
    assert done.stderr.strip() == f"identity: invalid settings: {setting}: {path} {problem}"


def test_a_3072_bit_seller_key_is_accepted(private_key_file: Path) -> None:
    """conftest's seller key, the size README asks for."""
    settings = Settings(_env_file=None, marketplace_private_key_file=private_key_file)
    assert settings.marketplace_private_key_file == private_key_file


def test_a_port_out_of_range_is_refused(tmp_path: Path) -> None:
    done = identity(tmp_path, "serve", "--port", "99999")
    assert done.returncode == 2 and "--port" in done.stderr


@pytest.mark.parametrize("command", [["tenants", "list"], ["migrate"], ["worker", "--once"]])
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    done = identity(tmp_path, *command, IDENTITY_DATABASE_URL=UNREACHABLE, IDENTITY_SECRET_KEY=KEY)
    one_line_naming(done, "cannot reach the database postgresql+psycopg://postgres@127.0.0.1:1")


def test_serve_starts_without_its_database_and_says_where_it_listens(tmp_path: Path) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IDENTITY_")}
    env = {**clean, "PYTHONPATH": str(ROOT), "IDENTITY_DATABASE_URL": UNREACHABLE,
           "IDENTITY_SECRET_KEY": KEY}  # fmt: skip
    argv = [sys.executable, "-m", "identity.cli", "serve", "--port", str(port)]
    with subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as server:
        try:
            deadline, ready = time.monotonic() + 30, None
            while time.monotonic() < deadline and ready is None:
                try:
                    ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                except httpx.TransportError:
                    time.sleep(0.2)
            assert ready is not None and ready.status_code == 503
            failed = httpx.get(
                f"http://127.0.0.1:{port}/sso/session", cookies={"identity_session": "x"}
            )
            assert failed.status_code == 503  # the database is down: retry later
        finally:
            server.terminate()
            output = server.communicate(timeout=20)[0]
    assert f"identity listening on http://127.0.0.1:{port}" in output
    assert f"public URL   http://127.0.0.1:{port}" in output  # follows --port when unset
    assert "cannot be reached yet" in output
    assert "Traceback" not in output
    failures = [line for line in output.splitlines() if '"request_failed"' in line]
    assert len(failures) == 1 and failures[0].startswith("{")
