"""`IDENTITY_<NAME>_FILE`: the secret settings read from files (Docker and Kubernetes secrets),
a source of `identity.settings.Settings`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

SECRET_SETTINGS = (
    "database_url",
    "secret_key",
    "marketplace_basic_key",
    "marketplace_basic_key_previous",
    "marketplace_kit_key",
    "marketplace_kit_key_previous",
    "marketplace_v1_key",
    "metrics_token",
    "smtp_password",
    "marketplace_sk",
)
"""Settings that may instead be read from a file named by `IDENTITY_<NAME>_FILE` (Docker and
Kubernetes secrets); the database URL is among them because it holds the password."""


class SecretFileError(ValueError):
    """An `IDENTITY_<NAME>_FILE` that cannot be used: set beside its variable, or unreadable."""


class SecretFiles(PydanticBaseSettingsSource):
    """`IDENTITY_<NAME>_FILE`, from the environment or `.env`: the named file's content, its
    trailing newlines stripped, is the value of `IDENTITY_<NAME>`. Setting both is an error,
    so which one holds the value is never a question of precedence."""

    def __init__(self, settings_cls: type[BaseSettings], variables: dict[str, str | None]):
        super().__init__(settings_cls)
        self.variables = variables

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every secret at once

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in SECRET_SETTINGS:
            variable = f"IDENTITY_{name.upper()}"
            path = self.variables.get(f"{variable}_FILE".lower())
            if not path:
                continue
            if self.variables.get(variable.lower()) is not None:
                raise SecretFileError(f"set {variable} or {variable}_FILE, not both")
            try:
                values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise SecretFileError(f"{variable}_FILE: cannot read {path}: {reason}") from None
        return values
