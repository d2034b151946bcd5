"""Keyring, envelope and field encryption: round trips, rotation, and bad input.

Bad input: every single-bit flip of a token, truncations, swapped key ids,
unknown keys and other rows' context must raise a typed error and never
return any plaintext.
"""

from __future__ import annotations

import base64
import uuid

import pytest
from pydantic import SecretStr

from lms_shared import SettingsError, load_settings
from lms_shared.security import (
    DecryptionError,
    Envelope,
    Key,
    Keyring,
    UnknownKeyId,
    decrypt_field,
    encrypt_field,
    envelope_from_settings,
    field_context,
    field_needs_reencrypt,
    keyring_from_settings,
    new_key_spec,
    reencrypt_field,
)

SECRET = b"student 4711: accommodation for dyslexia"


def ring(*ids: str) -> Keyring:
    return Keyring([Key.generate(i) for i in ids])


def test_round_trip_with_associated_data() -> None:
    keyring = ring("k1")
    token = keyring.encrypt(SECRET, b"ctx")
    assert SECRET not in token
    assert keyring.decrypt(token, b"ctx") == SECRET
    assert keyring.encrypt(SECRET, b"ctx") != token  # fresh nonce each time


def test_every_bit_flip_is_detected_without_plaintext() -> None:
    keyring = ring("k1")
    token = keyring.encrypt(SECRET, b"ctx")
    for index in range(len(token)):
        for bit in (0x01, 0x80):
            tampered = bytearray(token)
            tampered[index] ^= bit
            with pytest.raises(DecryptionError) as caught:
                keyring.decrypt(bytes(tampered), b"ctx")
            assert b"dyslexia" not in str(caught.value).encode()


@pytest.mark.parametrize("cut", [0, 1, 2, 5, 20, -1, -16])
def test_truncated_tokens_are_refused(cut: int) -> None:
    keyring = ring("k1")
    token = keyring.encrypt(SECRET)
    with pytest.raises(DecryptionError):
        keyring.decrypt(token[:cut])


def test_wrong_associated_data_is_refused() -> None:
    keyring = ring("k1")
    with pytest.raises(DecryptionError, match="authentication failed"):
        keyring.decrypt(keyring.encrypt(SECRET, b"row-1"), b"row-2")


def test_unknown_key_id_is_a_typed_error() -> None:
    token = ring("old").encrypt(SECRET)
    with pytest.raises(UnknownKeyId) as caught:
        ring("new").decrypt(token)
    assert caught.value.key_id == "old"
    assert isinstance(caught.value, DecryptionError)


def test_same_id_other_material_fails_authentication() -> None:
    token = ring("k1").encrypt(SECRET)
    with pytest.raises(DecryptionError):
        ring("k1").decrypt(token)


@pytest.mark.parametrize(
    "token",
    [b"", b"\x02", b"\x01\x00" + b"\x00" * 40, b"\x01\x02\xff\xfe" + b"\x00" * 40, "text"],
)
def test_malformed_tokens_are_refused(token: bytes) -> None:
    with pytest.raises(DecryptionError):
        ring("k1").decrypt(token)


def test_rotation_decrypts_old_and_reencrypts_to_current() -> None:
    old = ring("2025-07")
    token = old.encrypt(SECRET, b"a")
    rotated = old.rotated(Key.generate("2026-01"))
    assert rotated.current_key_id == "2026-01"
    assert rotated.key_ids == ["2026-01", "2025-07"]
    assert rotated.needs_reencrypt(token)
    moved = rotated.reencrypt(token, b"a")
    assert rotated.key_id_of(moved) == "2026-01"
    assert rotated.reencrypt(moved, b"a") is moved  # already current
    retired = rotated.without("2025-07")
    assert retired.decrypt(moved, b"a") == SECRET
    with pytest.raises(UnknownKeyId):
        retired.decrypt(token, b"a")
    with pytest.raises(ValueError, match="current key"):
        rotated.without("2026-01")


def test_reencrypt_still_verifies_current_tokens() -> None:
    keyring = ring("k1")
    token = bytearray(keyring.encrypt(SECRET))
    token[-1] ^= 1
    with pytest.raises(DecryptionError):
        keyring.reencrypt(bytes(token))


def test_keys_are_validated_and_never_shown() -> None:
    key = Key.generate("k1")
    assert "material" not in repr(key).replace("material=<hidden>", "")
    assert key.material.hex() not in repr(ring("k1"))
    with pytest.raises(ValueError, match="32 bytes"):
        Key("k", b"short")
    with pytest.raises(ValueError, match="not random"):
        Key("k", b"\x00" * 32)
    with pytest.raises(ValueError, match="key id"):
        Key("bad id!", bytes(range(32)))
    with pytest.raises(ValueError, match="duplicate"):
        Keyring([key, key])


def test_spec_parsing_names_the_variable_not_the_key() -> None:
    spec = ",".join([new_key_spec("2026-01"), new_key_spec("2025-07")])
    keyring = Keyring.parse(SecretStr(spec))
    assert keyring.key_ids == ["2026-01", "2025-07"]
    for bad in ("nocolon", "k:!!!notbase64", "k:" + base64.b64encode(b"x" * 16).decode(), ""):
        with pytest.raises(SettingsError) as caught:
            Keyring.parse(bad)
        assert caught.value.problems[0][0] == "LMS_ENCRYPTION_KEYS"


def test_keyring_and_envelope_from_settings() -> None:
    settings = load_settings(
        encryption_keys=new_key_spec("f1"), key_encryption_key=new_key_spec("kek1")
    )
    assert keyring_from_settings(settings).current_key_id == "f1"
    assert envelope_from_settings(settings).keks.current_key_id == "kek1"
    with pytest.raises(SettingsError, match="LMS_ENCRYPTION_KEYS"):
        keyring_from_settings(load_settings())
    with pytest.raises(SettingsError, match="LMS_KEY_ENCRYPTION_KEY"):
        envelope_from_settings(load_settings())


def test_envelope_round_trip_and_kek_rotation_by_rewrap() -> None:
    envelope = Envelope(ring("kek-1"))
    token = envelope.encrypt(SECRET, b"ctx")
    assert envelope.decrypt(token, b"ctx") == SECRET
    rotated = Envelope(envelope.keks.rotated(Key.generate("kek-2")))
    assert rotated.needs_reencrypt(token)
    rewrapped = rotated.rewrap(token)
    assert rotated.key_id_of(rewrapped) == "kek-2"
    assert rewrapped[-len(SECRET) - 16 :] == token[-len(SECRET) - 16 :]  # data untouched
    only_new = Envelope(Keyring([rotated.keks._keys["kek-2"]]))
    assert only_new.decrypt(rewrapped, b"ctx") == SECRET
    assert rotated.reencrypt(token, b"ctx") != token


def test_envelope_bad_input() -> None:
    envelope = Envelope(ring("kek-1"))
    token = envelope.encrypt(SECRET, b"ctx")
    with pytest.raises(UnknownKeyId):
        Envelope(ring("kek-x")).decrypt(token, b"ctx")
    with pytest.raises(DecryptionError):
        envelope.decrypt(token, b"other")
    for index in (0, 3, 10, 30, len(token) - 1):
        tampered = bytearray(token)
        tampered[index] ^= 0x40
        with pytest.raises(DecryptionError):
            envelope.decrypt(bytes(tampered), b"ctx")
    with pytest.raises(DecryptionError, match="truncated"):
        envelope.decrypt(token[:30])
    with pytest.raises(DecryptionError):
        envelope.decrypt(ring("k").encrypt(SECRET))  # a keyring token is not an envelope


@pytest.mark.parametrize(
    "cipher", [ring("f1"), Envelope(ring("kek1"))], ids=["keyring", "envelope"]
)
def test_fields_are_bound_to_table_column_and_row(cipher: Keyring | Envelope) -> None:
    row = uuid.uuid4()
    token = encrypt_field(cipher, "ann@example.org", table="users", column="email", row_id=row)
    assert token is not None
    assert "ann" not in token
    assert decrypt_field(cipher, token, table="users", column="email", row_id=row) == (
        "ann@example.org"
    )
    for table, column, row_id in (
        ("users", "email", uuid.uuid4()),
        ("users", "phone", row),
        ("students", "email", row),
    ):
        with pytest.raises(DecryptionError):
            decrypt_field(cipher, token, table=table, column=column, row_id=row_id)
    assert encrypt_field(cipher, None, table="users", column="email", row_id=row) is None
    assert decrypt_field(cipher, None, table="users", column="email", row_id=row) is None


def test_field_context_is_unambiguous() -> None:
    assert field_context("a.b", "c", 1) != field_context("a", "b.c", 1)
    assert field_context("t", "c", "12") == field_context("t", "c", 12)
    with pytest.raises(ValueError, match="required"):
        field_context("", "c", 1)


def test_field_rotation_job() -> None:
    old = ring("2025")
    token = encrypt_field(old, "555-0100", table="users", column="phone", row_id=7)
    assert token is not None
    new = old.rotated(Key.generate("2026"))
    assert field_needs_reencrypt(new, token)
    moved = reencrypt_field(new, token, table="users", column="phone", row_id=7)
    assert not field_needs_reencrypt(new, moved)
    assert decrypt_field(new, moved, table="users", column="phone", row_id=7) == "555-0100"


@pytest.mark.parametrize("token", ["", "not base64 at all ✓", "AAAA", "@@@@"])
def test_garbage_field_values_are_decryption_errors(token: str) -> None:
    with pytest.raises(DecryptionError):
        decrypt_field(ring("f1"), token, table="t", column="c", row_id=1)
