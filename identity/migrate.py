"""Run the Alembic migrations in `migrations/` (beside the package in a checkout or image)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from pydantic import SecretStr

from identity.db import create_private_sqlite_file

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str, secret_key: SecretStr | None = None) -> Config:
    config = Config()
    config.attributes["secret_key"] = secret_key
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, secret_key: SecretStr | None = None) -> None:
    """Bring the schema to the newest revision. Blocking: call it outside an event loop.

    The master key lets a revision re-encrypt stored secrets (0003: version-1 ciphertexts); a
    database that holds some is refused without it. A fresh database never needs it.
    """
    create_private_sqlite_file(database_url)
    command.upgrade(alembic_config(database_url, secret_key), "head")
