"""at-rest ciphertexts: version 2, associated data of length-prefixed fields

Version 1 bound a ciphertext to its row by the row's names joined with `/`, which is ambiguous
(tenant `a/b` + app `c` gave the same associated data as tenant `a` + app `b/c`). Every version-1
client secret and session token is re-encrypted as version 2 (identity.crypto), so that no
ambiguous ciphertext is left. That needs the master key: identity.migrate.upgrade hands it in
as the config attribute `secret_key`; without it, a database holding version-1 rows is refused
and left as it was. The formats are spelled out here, not imported, so that this revision keeps
meaning what it meant when later ones change identity.crypto.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:00:00
"""

import os
from collections.abc import Callable, Iterator, Sequence

import sqlalchemy as sa
from alembic import context, op
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

V1, V2 = b"\x01", b"\x02"
PAGE = 500

Context = tuple[str, ...]
Row = tuple[str, ...]
# (table, primary key columns, encrypted column, the context of a row from its key)
COLUMNS: list[tuple[str, Row, str, Callable[[Row], Context]]] = [
    (
        "app_credentials",
        ("tenant_id", "app_id"),
        "client_secret_enc",
        lambda k: ("app_credentials", *k),
    ),
    ("sessions", ("id_hash",), "access_token_enc", lambda k: ("sessions", k[0], "access")),
    ("sessions", ("id_hash",), "refresh_token_enc", lambda k: ("sessions", k[0], "refresh")),
]


def _aead(master_key: str, info: str) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode())
    return AESGCM(hkdf.derive(master_key.encode()))


class _Formats:
    """Version 1: `/`-joined context, key info `identity/at-rest/v1`. Version 2: each field as
    4-byte big-endian length + UTF-8, key info `identity/at-rest/v2`."""

    def __init__(self, master_key: str) -> None:
        self.keys = {
            V1: _aead(master_key, "identity/at-rest/v1"),
            V2: _aead(master_key, "identity/at-rest/v2"),
        }

    @staticmethod
    def associated_data(version: bytes, context: Context) -> bytes:
        if version == V1:
            return "/".join(context).encode()
        return b"".join(len(f).to_bytes(4, "big") + f for f in (c.encode() for c in context))

    def convert(self, blob: bytes, context: Context, to: bytes) -> bytes:
        version, nonce, body = blob[:1], blob[1:13], blob[13:]
        plain = self.keys[version].decrypt(nonce, body, self.associated_data(version, context))
        fresh = os.urandom(12)
        return to + fresh + self.keys[to].encrypt(fresh, plain, self.associated_data(to, context))


def _rows(table: str, key: Row, column: str, version: bytes) -> Iterator[tuple[Row, bytes]]:
    """(primary key, blob) of every row whose column holds a ciphertext of `version`, by pages."""
    t = sa.table(table, *(sa.column(c) for c in key), sa.column(column, sa.LargeBinary))
    pk = [t.c[c] for c in key]
    last: Row | None = None
    while True:
        query = sa.select(*pk, t.c[column]).where(t.c[column].is_not(None)).order_by(*pk)
        if last is not None:
            query = query.where(sa.tuple_(*pk) > sa.tuple_(*last))
        page = op.get_bind().execute(query.limit(PAGE)).all()
        for *values, blob in page:
            if bytes(blob[:1]) == version:
                yield tuple(values), bytes(blob)
        if len(page) < PAGE:
            return
        last = tuple(page[-1][: len(key)])


def _formats() -> _Formats:
    master_key = context.config.attributes.get("secret_key")
    if master_key is None:
        raise RuntimeError(
            "stored client secrets and session tokens must be re-encrypted, which needs the "
            "master key: run `identity migrate` with IDENTITY_SECRET_KEY set"
        )
    return _Formats(master_key.get_secret_value())


def _rewrite(source: bytes, target: bytes) -> None:
    formats: _Formats | None = None
    for table, key, column, to_context in COLUMNS:
        t = sa.table(table, *(sa.column(c) for c in key), sa.column(column, sa.LargeBinary))
        for k, blob in _rows(table, key, column, source):
            formats = formats or _formats()  # only a database with such rows needs the key
            op.get_bind().execute(
                sa.update(t)
                .where(*(t.c[c] == v for c, v in zip(key, k, strict=True)))
                .values({column: formats.convert(blob, to_context(k), target)})
            )


def upgrade() -> None:
    _rewrite(V1, V2)


def downgrade() -> None:
    _rewrite(V2, V1)
