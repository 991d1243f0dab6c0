"""The folder `identity demo` keeps its state in, and how other commands find a demo there.

`identity simulate …` and `identity tenants …` take `--demo-dir DIR`. Given, the demo's keys,
database and addresses are used, over identity's own settings (`IDENTITY_*`, `.env`); only
options typed beside it beat them. Not given, `./identity-demo` is used when it holds a demo and
identity's settings name none of the things it would supply (no marketplace key for `simulate`,
no `IDENTITY_DATABASE_URL` for `tenants`): configured settings are never mixed with a demo's.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from identity.settings import Settings

DEFAULT = Path("identity-demo")
KEYS = "keys.json"
PRIVATE_KEY = "seller-private-key.pem"
DATABASE = "identity.db"
ADDRESSES = "demo.json"
EXAMPLE_CLIENT = "example-app.json"

MARKETPLACE_SETTINGS = (
    "marketplace_basic_key",
    "marketplace_kit_key",
    "marketplace_private_key_file",
)
DATABASE_SETTINGS = ("database_url",)
_FIELDS = {
    KEYS: ("secret", "basic", "kit"),
    ADDRESSES: ("identity", "simulator", "example_app"),
    EXAMPLE_CLIENT: ("client_id", "client_secret"),
}


class DemoDirError(Exception):
    """A demo folder that cannot be used: one line, saying what is missing and what to do."""


@dataclass(frozen=True)
class Demo:
    """What a demo folder holds; a file the command did not ask for may be absent ({})."""

    folder: Path
    keys: dict[str, str]
    addresses: dict[str, str]
    example_client: dict[str, str]

    @property
    def private_key_file(self) -> Path:
        return self.folder / PRIVATE_KEY

    @property
    def database_url(self) -> str:
        return database_url(self.folder)


def database_url(folder: Path) -> str:
    return f"sqlite+aiosqlite:///{(folder / DATABASE).resolve()}"


def write_addresses(folder: Path, identity: str, simulator: str, example_app: str) -> None:
    """Where the demo's servers listen, so `--demo-dir` finds them (written at every start)."""
    addresses = {"identity": identity, "simulator": simulator, "example_app": example_app}
    (folder / ADDRESSES).write_text(json.dumps(addresses, indent=2) + "\n")


def configured(fields: Iterable[str]) -> bool:
    """Whether identity's settings (environment or `.env`) set any of `fields`; unreadable
    settings count as set, so their error is reported where they are read."""
    try:
        return bool(Settings().model_fields_set & set(fields))
    except ValueError:
        return True


def find(option: Path | None, needs: Iterable[str], is_configured: bool) -> Demo | None:
    """The demo in `--demo-dir` (DemoDirError when it lacks a file in `needs`), else the one in
    ./identity-demo when it has them all and nothing is configured, else None."""
    needs = tuple(needs)
    if option is not None:
        folder = option.resolve()
        for name in needs:
            if not (folder / name).is_file():
                start = f"identity demo --dir {shlex.quote(str(folder))}"
                raise DemoDirError(
                    f"--demo-dir {folder} holds no demo ({name} is missing): start one with "
                    f"`{start}` (make demo uses ./{DEFAULT})"
                )
    elif is_configured or not all((DEFAULT / name).is_file() for name in needs):
        return None
    else:
        folder = DEFAULT.resolve()
    return Demo(
        folder, _read(folder, KEYS), _read(folder, ADDRESSES), _read(folder, EXAMPLE_CLIENT)
    )


def _read(folder: Path, name: str) -> dict[str, str]:
    path = folder / name
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
        return {field: str(data[field]) for field in _FIELDS[name]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = f"no {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise DemoDirError(f"{path} is not what `identity demo` writes: {reason}") from None
