"""Secrets at rest: Fernet-encrypted columns, and the SSH key pair made for each cluster."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class SecretBox:
    """Encrypts values with a key from DISCO_SECRET_KEY or a 0600 file in the data directory."""

    def __init__(self, data_dir: Path) -> None:
        key = os.environ.get("DISCO_SECRET_KEY", "").encode()
        if not key:
            path = Path(data_dir) / "secret.key"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(Fernet.generate_key())
            key = path.read_bytes().strip()
        self._fernet = Fernet(key)

    def seal(self, value: Any) -> str:
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def open(self, token: str) -> Any:
        return json.loads(self._fernet.decrypt(token.encode())) if token else None


def ssh_keypair(comment: str) -> tuple[str, str]:
    """A new ed25519 key pair as (OpenSSH public line, OpenSSH private PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return f"{public} {comment}", private
