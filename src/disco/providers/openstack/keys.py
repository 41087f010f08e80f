"""The SSH key pair DISCO makes for a cluster whose user brings none: ed25519, the public half
in OpenSSH format for Nova, the private half (OpenSSH PEM) for whoever logs in. The private
key is never logged, printed or put into a template: its repr hides it."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class SSHKeyPair:
    public_key: str
    private_key: bytes = field(repr=False)


def generate_key_pair(comment: str = "") -> SSHKeyPair:
    """A new ed25519 key pair; `comment` (e.g. the cluster's name prefix) ends the public
    key's line."""
    if any(character in comment for character in "\r\n"):
        raise ValueError("an SSH key comment is one line")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return SSHKeyPair(public_key=f"{public} {comment}".strip(), private_key=private)
