"""Encryption at rest: AES-256-GCM under a key derived from the master key (IDENTITY_SECRET_KEY).

Each ciphertext is `version(1) || nonce(12) || ciphertext+tag` and is bound to its row by the
associated data, so a secret copied to another row does not decrypt there.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"


class Cipher:
    def __init__(self, master_key: str) -> None:
        if len(master_key) < 16:
            raise ValueError("IDENTITY_SECRET_KEY must be at least 16 characters")
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"identity/at-rest/v1"
        ).derive(master_key.encode())
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, context: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, context: str) -> str:
        if blob[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        nonce, body = blob[1:13], blob[13:]
        return self._aead.decrypt(nonce, body, context.encode()).decode()
