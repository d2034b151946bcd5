"""Field-level encryption of sensitive values stored in the database.

A field's ciphertext is bound to where it lives: the associated data is
the table, the column and the row id, so a ciphertext copied into another
row or column does not decrypt (it fails loudly instead of showing one
user's PII as another's). Values are text in and text out (URL-safe
base64), for a plain ``TEXT`` column::

    token = encrypt_field(keyring, user.email, table="users", column="email", row_id=user.id)
    email = decrypt_field(keyring, token, table="users", column="email", row_id=user.id)

The row id must be known before the insert: give such tables client-made
ids (UUIDs). Encrypted columns cannot be searched or sorted; keep a keyed
hash beside them when lookups are needed.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Protocol, runtime_checkable
from uuid import UUID

from lms_shared.security._errors import DecryptionError

__all__ = [
    "Cipher",
    "decrypt_field",
    "encrypt_field",
    "field_context",
    "field_needs_reencrypt",
    "reencrypt_field",
]

RowId = str | int | UUID
_DOMAIN = b"lms-field/v1"


@runtime_checkable
class Cipher(Protocol):
    """What field encryption needs: :class:`Keyring` and :class:`Envelope` both fit."""

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt and authenticate, binding ``aad``."""
        ...

    def decrypt(self, token: bytes, aad: bytes = b"") -> bytes:
        """Decrypt, or raise :class:`DecryptionError`."""
        ...

    def needs_reencrypt(self, token: bytes) -> bool:
        """Whether the token was made under a retired key."""
        ...

    def reencrypt(self, token: bytes, aad: bytes = b"") -> bytes:
        """The same plaintext under the current key."""
        ...


def field_context(table: str, column: str, row_id: RowId) -> bytes:
    """The associated data binding a value to ``table.column`` of one row.

    Each part is length-prefixed, so no two different triples give the
    same bytes (``("a.b", "c")`` and ``("a", "b.c")`` stay distinct).

    Raises:
        ValueError: table or column is empty.
    """
    if not table or not column:
        raise ValueError("table and column are required")
    parts = (table.encode(), column.encode(), str(row_id).encode())
    return _DOMAIN + b"".join(struct.pack(">H", len(p)) + p for p in parts)


def encrypt_field(
    cipher: Cipher, value: str | None, *, table: str, column: str, row_id: RowId
) -> str | None:
    """Encrypt one field value for storage; ``None`` stays ``None``.

    Args:
        cipher: a :class:`Keyring` or :class:`Envelope`.
        value: the plaintext.
        table: the table the value is stored in.
        column: its column.
        row_id: the row's primary key (known before the insert).

    Returns:
        URL-safe base64 text to store.
    """
    if value is None:
        return None
    token = cipher.encrypt(value.encode(), field_context(table, column, row_id))
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def decrypt_field(
    cipher: Cipher, token: str | None, *, table: str, column: str, row_id: RowId
) -> str | None:
    """Decrypt a stored field value; ``None`` stays ``None``.

    Raises:
        UnknownKeyId: made with a key the cipher no longer holds.
        DecryptionError: altered, or stored under another table, column or row.
    """
    if token is None:
        return None
    plaintext = cipher.decrypt(_decode(token), field_context(table, column, row_id))
    try:
        return plaintext.decode()
    except UnicodeDecodeError:  # authenticated, so only a non-text writer did this
        raise DecryptionError("the decrypted field is not UTF-8 text") from None


def field_needs_reencrypt(cipher: Cipher, token: str) -> bool:
    """Whether a stored value was made under a retired key."""
    return cipher.needs_reencrypt(_decode(token))


def reencrypt_field(cipher: Cipher, token: str, *, table: str, column: str, row_id: RowId) -> str:
    """A stored value moved to the current key (for a rotation job).

    Raises:
        DecryptionError: as :func:`decrypt_field`.
    """
    new = cipher.reencrypt(_decode(token), field_context(table, column, row_id))
    return base64.urlsafe_b64encode(new).decode().rstrip("=")


def _decode(token: str) -> bytes:
    if not isinstance(token, str) or not token.isascii():
        raise DecryptionError("an encrypted field is URL-safe base64 text")
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError("an encrypted field is URL-safe base64 text") from None
