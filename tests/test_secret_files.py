"""Secrets from files: `IDENTITY_<NAME>_FILE` names a file (a Docker or Kubernetes secret)
whose content is the value of `IDENTITY_<NAME>`; both set, or an unreadable file, is one line
naming the variable and exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from identity.secret_files import SECRET_SETTINGS, SecretFileError
from identity.settings import Settings
from tests.helpers.cli import KEY, identity, one_line_naming

VALUES = {
    "database_url": "postgresql://identity:pw@db:5432/identity",
    "secret_key": "master-key-0123456789",
    "marketplace_basic_key": "basic-key-0123456789",
    "marketplace_basic_key_previous": "basic-key-previous-0123",
    "marketplace_kit_key": "kit-key-0123456789ab",
    "marketplace_kit_key_previous": "kit-key-previous-01234",
    "metrics_token": "metrics-token-0123456",
    "smtp_password": "smtp password with spaces",
    "marketplace_sk": "huawei-cloud-secret-access-key",
    "marketplace_v1_key": "v1-seller-key-0123456",
}


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No IDENTITY_* variable, and a working directory without a `.env`."""
    for name in [n for n in os.environ if n.startswith("IDENTITY_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def secret_file(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content)
    return path


def test_every_secret_setting_is_read_from_its_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(VALUES) == set(SECRET_SETTINGS)
    for name, value in VALUES.items():
        path = secret_file(clean_env, name, value + "\n")  # as `echo` and editors write them
        monkeypatch.setenv(f"IDENTITY_{name.upper()}_FILE", str(path))
    settings = Settings(
        smtp_host="smtp.example.com", smtp_from="id@example.com", marketplace_ak="HPUAKEY"
    )
    for name, value in VALUES.items():
        found = getattr(settings, name)
        assert (found if isinstance(found, str) else found.get_secret_value()) == value, name
    assert not settings.is_embedded_default


def test_only_trailing_newlines_are_stripped(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = secret_file(clean_env, "key", " spaced master key 0123 \r\n\n")
    monkeypatch.setenv("IDENTITY_SECRET_KEY_FILE", str(path))
    settings = Settings()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == " spaced master key 0123 "


def test_a_file_named_in_dot_env_is_read(clean_env: Path) -> None:
    path = secret_file(clean_env, "token", VALUES["metrics_token"])
    (clean_env / ".env").write_text(f"IDENTITY_METRICS_TOKEN_FILE={path}\n")
    token = Settings().metrics_token
    assert token is not None and token.get_secret_value() == VALUES["metrics_token"]


def test_a_file_is_validated_like_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_SECRET_KEY_FILE", str(secret_file(clean_env, "k", "short\n")))
    with pytest.raises(ValueError, match="IDENTITY_SECRET_KEY|secret_key"):
        Settings()


def test_both_set_is_refused_even_across_env_and_dot_env(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = secret_file(clean_env, "kit", VALUES["marketplace_kit_key"])
    (clean_env / ".env").write_text(f"IDENTITY_MARKETPLACE_KIT_KEY={VALUES['secret_key']}\n")
    monkeypatch.setenv("IDENTITY_MARKETPLACE_KIT_KEY_FILE", str(path))
    with pytest.raises(SecretFileError, match="IDENTITY_MARKETPLACE_KIT_KEY_FILE"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "plain", "message"),
    [
        ("IDENTITY_SECRET_KEY", KEY, "IDENTITY_SECRET_KEY or IDENTITY_SECRET_KEY_FILE, not both"),
        ("IDENTITY_SMTP_PASSWORD", None, "IDENTITY_SMTP_PASSWORD_FILE: cannot read"),
        ("IDENTITY_DATABASE_URL", None, "IDENTITY_DATABASE_URL_FILE: cannot read"),
    ],
)
def test_a_conflict_or_a_missing_file_is_one_line_and_exit_2(
    tmp_path: Path, variable: str, plain: str | None, message: str
) -> None:
    env = {f"{variable}_FILE": str(tmp_path / ("key" if plain else "missing"))}
    (tmp_path / "key").write_text(KEY + "\n")
    if plain is not None:
        env[variable] = plain
    done = identity(tmp_path, "migrate", **env)
    one_line_naming(done, message)
    assert KEY not in done.stderr + done.stdout
