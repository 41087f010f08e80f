"""The key pair DISCO makes: a real ed25519 pair, never shown by repr."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from disco.providers.openstack.design import GeneratedKey
from disco.providers.openstack.keys import generate_key_pair
from openstack_designs import typical_design


def test_halves_match_and_formats_are_openssh():
    pair = generate_key_pair("disco-word-count-3f2a9c1e")
    assert pair.public_key.startswith("ssh-ed25519 AAAA") and pair.public_key.endswith(" disco-word-count-3f2a9c1e")
    assert pair.private_key.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    private = serialization.load_ssh_private_key(pair.private_key, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    public_from_private = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                            serialization.PublicFormat.OpenSSH).decode()
    assert pair.public_key.split()[:2] == public_from_private.split()
    # A design takes it as it is.
    assert replace(typical_design(), key=GeneratedKey(pair.public_key)).key.public_key == pair.public_key


def test_each_pair_is_new_and_the_private_half_never_shows():
    first, second = generate_key_pair(), generate_key_pair()
    assert first.public_key != second.public_key and first.private_key != second.private_key
    assert len(first.public_key.split()) == 2
    shown = repr(first) + str(first)
    assert "PRIVATE" not in shown and first.private_key.decode() not in shown
    assert first.public_key in shown


def test_a_comment_is_one_line():
    with pytest.raises(ValueError, match="one line"):
        generate_key_pair("a\nb")
