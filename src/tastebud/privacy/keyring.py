"""Loading (and, in development, generating) the deployment's secrets.

Two secrets are kept apart, as DESIGN.md requires: the HMAC key for pseudonyms (never rotated) and
the Fernet keys for encrypted fields (rotated). In ``development`` a missing secret is generated
once into ``<data_dir>/secrets/`` with mode 0600; in ``production`` it must be configured.
"""

from __future__ import annotations

import os
import secrets as _stdlib_secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from tastebud.config import Settings
from tastebud.errors import ConfigError
from tastebud.files import private_dir

__all__ = ["Secrets", "load_secrets"]


@dataclass(frozen=True)
class Secrets:
    """The deployment's key material. Its ``repr`` never shows a key."""

    pseudonym_key: bytes = field(repr=False)
    fernet_keys: tuple[bytes, ...] = field(repr=False)


def _write_private(path: Path, content: str) -> None:
    private_dir(path.parent)  # the data dir and its secrets/ folder: 0700
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)


def _read_or_create(path: Path, make: str) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        try:
            _write_private(path, make + "\n")
        except FileExistsError:  # another process created it first: use theirs
            pass
        return path.read_text().strip()


def _parse_fernet(value: str) -> tuple[bytes, ...]:
    keys = tuple(
        k.strip().encode("ascii") for k in value.replace("\n", ",").split(",") if k.strip()
    )
    if not keys:
        raise ConfigError("TASTEBUD_FERNET_KEYS is empty")
    for k in keys:
        try:
            Fernet(k)
        except ValueError as exc:
            raise ConfigError(
                "a key in TASTEBUD_FERNET_KEYS is malformed "
                "(expected 32 url-safe base64-encoded bytes each, comma-separated)"
            ) from exc
    return keys


def load_secrets(settings: Settings) -> Secrets:
    """Return the configured secrets, generating missing ones in development.

    Raises:
        ConfigError: a secret is missing in production, or malformed.
    """
    pseudo = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    fernet = settings.fernet_keys.get_secret_value() if settings.fernet_keys else None
    if settings.env == "production":
        missing = [
            name
            for name, value in (
                ("TASTEBUD_PSEUDONYM_KEY", pseudo),
                ("TASTEBUD_FERNET_KEYS", fernet),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"production requires {' and '.join(missing)} to be set")
    secret_dir = settings.data_dir / "secrets"
    if not pseudo:
        pseudo = _read_or_create(secret_dir / "pseudonym.key", _stdlib_secrets.token_hex(32))
    if not fernet:
        fernet = _read_or_create(secret_dir / "fernet.keys", Fernet.generate_key().decode())
    if len(pseudo) < 32:
        raise ConfigError("TASTEBUD_PSEUDONYM_KEY must be at least 32 characters")
    return Secrets(pseudonym_key=pseudo.encode("utf-8"), fernet_keys=_parse_fernet(fernet))
