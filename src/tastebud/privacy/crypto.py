"""Field encryption with several Fernet keys (``cryptography``'s MultiFernet).

The first key encrypts; every key decrypts, so keys can be rotated without downtime: add a new key
in front, re-encrypt stored fields, then drop the old key.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from tastebud.errors import ConfigError

__all__ = ["ENCRYPTED_MARKER", "FieldCipher"]

ENCRYPTED_MARKER = "$enc"
"""Encrypted values are stored as ``{"$enc": "<fernet token>"}`` inside event JSON."""


class FieldCipher:
    """Encrypts and decrypts individual string fields.

    >>> from cryptography.fernet import Fernet
    >>> c = FieldCipher([Fernet.generate_key()])
    >>> c.decrypt(c.encrypt("ann@example.com"))
    'ann@example.com'
    """

    __slots__ = ("_multi",)

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ConfigError("at least one Fernet key is required")
        try:
            self._multi = MultiFernet([Fernet(k) for k in keys])
        except ValueError as exc:
            raise ConfigError(
                "a Fernet key is malformed (expected 32 url-safe base64-encoded bytes)"
            ) from exc

    def __repr__(self) -> str:
        return "FieldCipher(<keys hidden>)"

    def encrypt(self, plaintext: str) -> str:
        """Encrypt with the newest key; returns the Fernet token as text."""
        return self._multi.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt with whichever key matches.

        Raises:
            ValueError: no configured key decrypts the token.
        """
        try:
            return self._multi.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ValueError("no configured key decrypts this field") from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt a token under the newest key."""
        return self._multi.rotate(token.encode("ascii")).decode("ascii")
