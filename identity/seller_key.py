"""The seller's RSA private key (`IDENTITY_MARKETPLACE_PRIVATE_KEY_FILE`), which decrypts
applicationSync `clientSecret` (contract §2.7, identity.marketplace.client_secret).

Below the settings, which check the key with `load_seller_key` at start: a key that cannot work
stops the service in one line instead of answering every applicationSync 000101. The app loads
it again afterwards, from the cache.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

MIN_BITS = 3072
"""The marketplace takes no shorter public key on an app credential (contract §2.7)."""


def load_seller_key(path: Path) -> rsa.RSAPrivateKey:
    """The key in `path`: an unencrypted PEM RSA key of at least `MIN_BITS` bits. Anything else
    is a one-line ValueError naming the file, which the settings report as it is."""
    try:
        key = _parse(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except TypeError:  # cryptography's answer to an encrypted key read without a password
        raise ValueError(f"{path} holds an encrypted private key; it must be unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{path} does not hold a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    if key.key_size < MIN_BITS:
        raise ValueError(
            f"{path} holds a {key.key_size}-bit RSA key; at least {MIN_BITS} bits are needed"
        )
    return key


@functools.lru_cache(maxsize=4)
def _parse(pem: bytes) -> Any:
    """Checking a 3072-bit key costs ~0.4 s: once per process (the settings' check at start);
    every app built with the same key afterwards skips it."""
    return serialization.load_pem_private_key(pem, password=None)
