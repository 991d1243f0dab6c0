"""Keys derived from the master key (IDENTITY_SECRET_KEY): encryption at rest and MACs.

Each ciphertext is `version(1) || nonce(12) || ciphertext+tag` (AES-256-GCM) and is bound to its
row by the associated data, so a secret copied to another row does not decrypt there. The row is
named by separate fields, each encoded with its length, so no two rows share associated data
(version 1 joined them with `/`: tenant `a/b` + app `c` was tenant `a` + app `b/c`; migration
0003 re-encrypted those). Each use gets its own key (HKDF with a distinct `info`), so a MAC never
shares a key with encryption.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x02"

Context = tuple[str, ...]
"""What a ciphertext belongs to, field by field: `("app_credentials", tenant_id, app_id)`."""


def derive_key(master_key: str, info: str) -> bytes:
    if len(master_key) < 16:
        raise ValueError("IDENTITY_SECRET_KEY must be at least 16 characters")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode())
    return hkdf.derive(master_key.encode())


def associated_data(context: Context) -> bytes:
    """Each field as 4-byte big-endian length + UTF-8: one byte string per tuple, and back."""
    encoded = [field.encode() for field in context]
    return b"".join(len(field).to_bytes(4, "big") + field for field in encoded)


class Cipher:
    """Encryption at rest: AES-256-GCM under a key derived from the master key
    (`IDENTITY_SECRET_KEY`). Every value is sealed with its context (table, row key, field) as
    associated data, so a ciphertext copied to another row or field does not decrypt."""

    def __init__(self, master_key: str) -> None:
        self._aead = AESGCM(derive_key(master_key, "identity/at-rest/v2"))

    def encrypt(self, plaintext: str, context: Context) -> bytes:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), associated_data(context))
        return _VERSION + nonce + sealed

    def decrypt(self, blob: bytes, context: Context) -> str:
        if blob[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        nonce, body = blob[1:13], blob[13:]
        return self._aead.decrypt(nonce, body, associated_data(context)).decode()


class Mac:
    """HMAC-SHA256 under a key of its own: login-state cookies, CSRF tokens."""

    def __init__(self, master_key: str, purpose: str) -> None:
        self._key = derive_key(master_key, f"identity/mac/{purpose}/v1")

    def sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, tag: str) -> bool:
        # Bytes: compare_digest refuses str with non-ASCII characters (a forged tag may have them).
        return hmac.compare_digest(self.sign(message).encode(), tag.encode())
