"""Decrypting applicationSync `clientSecret` with the seller's RSA private key (contract §2.7).

The OAEP parameters are undocumented, so the variants are tried in the design's order. OAEP
fails closed: a wrong guess raises, it never yields garbage.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from identity.errors import SecretUndecryptable

OAEP_VARIANTS: list[tuple[str, hashes.HashAlgorithm, hashes.HashAlgorithm]] = [
    ("sha256/mgf1-sha1", hashes.SHA256(), hashes.SHA1()),  # noqa: S303 - MGF1 only
    ("sha256/mgf1-sha256", hashes.SHA256(), hashes.SHA256()),
    ("sha1/mgf1-sha1", hashes.SHA1(), hashes.SHA1()),  # noqa: S303
]


def decrypt_client_secret(key: rsa.RSAPrivateKey | None, ciphertext: str) -> tuple[str, str]:
    """Return (plaintext, variant). Raises SecretUndecryptable; never says why in detail."""
    if key is None:
        raise SecretUndecryptable("no seller private key is configured")
    raw = _base64(ciphertext)
    if raw is None:
        raise SecretUndecryptable("clientSecret is not base64")
    for name, digest, mgf in OAEP_VARIANTS:
        try:
            plain = key.decrypt(
                raw, padding.OAEP(mgf=padding.MGF1(mgf), algorithm=digest, label=None)
            )
        except ValueError:
            continue
        try:
            return plain.decode("utf-8"), name
        except UnicodeDecodeError:
            break
    raise SecretUndecryptable("clientSecret does not decrypt with the seller private key")


def _base64(text: str) -> bytes | None:
    """Standard base64, also MIME-wrapped (older commons-codec), unpadded or URL-safe."""
    compact = "".join(text.split()).encode()
    compact += b"=" * (-len(compact) % 4)
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(compact, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def encrypt_client_secret(public_key: rsa.RSAPublicKey, plaintext: str, variant: int = 0) -> str:
    """What KooGallery does to a secret: for the simulator and the tests."""
    _, digest, mgf = OAEP_VARIANTS[variant]
    blob = public_key.encrypt(
        plaintext.encode(), padding.OAEP(mgf=padding.MGF1(mgf), algorithm=digest, label=None)
    )
    return base64.b64encode(blob).decode()
