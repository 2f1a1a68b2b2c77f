"""Several secret keys: the newest encrypts, any decrypts, rotation moves to the newest."""

from __future__ import annotations

import pytest

from reengage.adapters.crypto import Credentials
from reengage.config import Settings

OLD = "old-secret-key-0123456789abcdefghijklmnop"
NEW = "new-secret-key-0123456789abcdefghijklmnop"


def test_keys_are_read_newest_first_and_comma_separated() -> None:
    assert Settings(secret_key=f" {NEW} , {OLD},").secret_keys() == [NEW, OLD]
    assert Settings(secret_key=NEW).secret_keys() == [NEW]


def test_the_previous_key_decrypts_until_the_credentials_are_rotated() -> None:
    stored = Credentials(OLD).encrypt({"token": "t"})
    both = Credentials([NEW, OLD])
    assert both.of(1, stored) == {"token": "t"}
    with pytest.raises(ValueError, match="cannot be decrypted"):
        Credentials(NEW).of(1, stored)
    rotated = both.rotate(stored)
    assert rotated is not None
    assert Credentials(NEW).of(1, rotated) == {"token": "t"}
    assert both.rotate(rotated) is None  # already on the newest key


def test_a_credential_no_key_decrypts_is_refused() -> None:
    stored = Credentials("a-third-key-0123456789abcdefghijklmnop").encrypt({"token": "t"})
    with pytest.raises(ValueError, match="any secret key"):
        Credentials([NEW, OLD]).rotate(stored)
