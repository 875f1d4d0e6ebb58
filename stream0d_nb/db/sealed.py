"""Secrets at rest: configuration holding passwords (alert sinks) is sealed in the registry.

Sealing is Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``). The key is
``STREAM0D_SECRET_KEY`` (any text of 32+ characters; every process sharing a registry
needs the same) or, on one machine, ``<home>/secret.key`` created at first use with
mode 0600. Values stored before sealing existed are read as they are and sealed on their
next save.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from stream0d_nb.errors import Stream0dError
from stream0d_nb.settings import Settings

SEALED = "sealed"
MIN_KEY_CHARS = 32


class SecretKeyError(Stream0dError, ValueError):
    """The secret key is missing, too short, or not the one the data was sealed with."""


class Sealer:
    """Seal and unseal JSON-able dicts with one key."""

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_KEY_CHARS:
            raise SecretKeyError(
                f"STREAM0D_SECRET_KEY must have at least {MIN_KEY_CHARS} characters"
            )
        key = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer:
        """The key of ``settings``: ``secret_key``, else ``<home>/secret.key`` (made once)."""
        if settings.secret_key is not None:
            return cls(settings.secret_key.get_secret_value())
        return cls(secret_file(settings.home / "secret.key"))

    def seal(self, data: dict[str, Any]) -> dict[str, Any]:
        """``{"sealed": <token>}`` holding ``data``."""
        return {SEALED: self._fernet.encrypt(json.dumps(data).encode()).decode()}

    def unseal(self, stored: dict[str, Any], what: str) -> dict[str, Any]:
        """The dict sealed in ``stored`` (a dict stored before sealing comes back as is)."""
        if set(stored) != {SEALED}:
            return stored
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(stored[SEALED].encode()))
        except InvalidToken:
            raise SecretKeyError(
                f"{what} was sealed with another secret key: set STREAM0D_SECRET_KEY to the "
                "key in use when it was saved (or save it again)"
            ) from None
        return data


def secret_file(path: Path, nbytes: int = 32) -> str:
    """The random secret kept in ``path``, created (mode 0600) on first use.

    Safe against a concurrent first use: the file is created exclusively, and a process
    that loses the race reads the winner's secret.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value
