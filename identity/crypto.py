"""Keys derived from the master key (IDENTITY_SECRET_KEY): encryption at rest and MACs.

Each ciphertext is `version(1) || nonce(12) || ciphertext+tag` (AES-256-GCM) and is bound to its
row by the associated data, so a secret copied to another row does not decrypt there. Each use
gets its own key (HKDF with a distinct `info`), so a MAC never shares a key with encryption.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"


def derive_key(master_key: str, info: str) -> bytes:
    if len(master_key) < 16:
        raise ValueError("IDENTITY_SECRET_KEY must be at least 16 characters")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode())
    return hkdf.derive(master_key.encode())


class Cipher:
    def __init__(self, master_key: str) -> None:
        self._aead = AESGCM(derive_key(master_key, "identity/at-rest/v1"))

    def encrypt(self, plaintext: str, context: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, context: str) -> str:
        if blob[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        nonce, body = blob[1:13], blob[13:]
        return self._aead.decrypt(nonce, body, context.encode()).decode()


class Mac:
    """HMAC-SHA256 under a key of its own: login-state cookies, CSRF tokens."""

    def __init__(self, master_key: str, purpose: str) -> None:
        self._key = derive_key(master_key, f"identity/mac/{purpose}/v1")

    def sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, tag: str) -> bool:
        # Bytes: compare_digest refuses str with non-ASCII characters (a forged tag may have them).
        return hmac.compare_digest(self.sign(message).encode(), tag.encode())
