"""A keyring of AES-256-GCM keys with ids, for encryption with rotation.

Every ciphertext names the key that made it, so a keyring can hold the
current key and the retired ones: :meth:`Keyring.encrypt` always uses the
current key, :meth:`Keyring.decrypt` accepts any key it holds, and
:meth:`Keyring.reencrypt` moves a ciphertext to the current key (run it
over the stored rows after a rotation, then drop the old key).

Token layout (bytes)::

    0x01 | len(key id) | key id (ASCII) | nonce (12) | ciphertext + tag (16)

The header is part of the associated data, so it cannot be edited without
the tag failing. Nonces are random (96 bits): rotate keys well before
2**32 encryptions under one key.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from lms_shared.errors import SettingsError
from lms_shared.security._errors import DecryptionError, UnknownKeyId

__all__ = ["KEY_BYTES", "Key", "Keyring", "new_key_spec"]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
VERSION = 0x01
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _b64decode(text: str) -> bytes:
    text = text.strip()
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))


@dataclass(frozen=True, slots=True, repr=False)
class Key:
    """One AES-256 key and its id.

    Attributes:
        key_id: 1-64 characters of ``A-Z a-z 0-9 . _ -``, stored in every
            ciphertext (so never reuse an id for other key material).
        material: exactly 32 random bytes.
    """

    key_id: str
    material: bytes
    aead: AESGCM = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.key_id):
            raise ValueError(f"a key id is 1-64 of A-Z a-z 0-9 . _ -, got {self.key_id!r}")
        if len(self.material) != KEY_BYTES:
            raise ValueError(f"key {self.key_id!r} must be {KEY_BYTES} bytes")
        if len(set(self.material)) < 8:
            raise ValueError(f"key {self.key_id!r} is not random (too few distinct bytes)")
        object.__setattr__(self, "aead", AESGCM(self.material))

    def __repr__(self) -> str:
        return f"Key(key_id={self.key_id!r}, material=<hidden>)"

    @classmethod
    def generate(cls, key_id: str) -> Key:
        """A new key of 32 bytes from the operating system's CSPRNG."""
        return cls(key_id, os.urandom(KEY_BYTES))


def new_key_spec(key_id: str) -> str:
    """A fresh ``"kid:base64key"`` entry for ``LMS_ENCRYPTION_KEYS`` and the like.

    Example:
        ``python -c "from lms_shared.security import new_key_spec as k; print(k('2026-01'))"``
    """
    key = Key.generate(key_id)
    return f"{key.key_id}:{base64.urlsafe_b64encode(key.material).decode().rstrip('=')}"


class Keyring:
    """AES-256-GCM keys by id; encrypts with the current one, decrypts with any.

    Args:
        keys: the keys; ids must be unique.
        current: id of the key new ciphertexts use; the first key by default.

    Raises:
        ValueError: no keys, duplicate ids, or ``current`` is not among them.
    """

    def __init__(self, keys: Iterable[Key], current: str | None = None) -> None:
        self._keys: dict[str, Key] = {}
        for key in keys:
            if key.key_id in self._keys:
                raise ValueError(f"duplicate key id {key.key_id!r}")
            self._keys[key.key_id] = key
        if not self._keys:
            raise ValueError("a keyring needs at least one key")
        current = current if current is not None else next(iter(self._keys))
        if current not in self._keys:
            raise ValueError(f"current key {current!r} is not in the keyring")
        self._current = self._keys[current]
        kid = current.encode()
        self._header = bytes([VERSION, len(kid)]) + kid

    def __repr__(self) -> str:
        return f"Keyring(current={self.current_key_id!r}, key_ids={self.key_ids!r})"

    @classmethod
    def parse(cls, spec: str | SecretStr, *, variable: str = "LMS_ENCRYPTION_KEYS") -> Keyring:
        """Read ``"kid1:base64key,kid2:base64key"``; the first key is current.

        Raises:
            SettingsError: naming ``variable`` (never the key material).
        """
        text = spec.get_secret_value() if isinstance(spec, SecretStr) else spec
        keys = []
        try:
            for entry in filter(None, (part.strip() for part in text.split(","))):
                key_id, sep, material = entry.partition(":")
                if not sep:
                    raise ValueError("each entry is 'key-id:base64-key'")
                try:
                    raw = _b64decode(material)
                except ValueError:
                    raise ValueError(f"key {key_id!r} is not valid base64") from None
                keys.append(Key(key_id.strip(), raw))
            return cls(keys)
        except ValueError as exc:
            raise SettingsError([(variable, str(exc))]) from None

    @property
    def current_key_id(self) -> str:
        """Id of the key used for new ciphertexts."""
        return self._current.key_id

    @property
    def key_ids(self) -> list[str]:
        """Ids of every key, current first."""
        return [self.current_key_id, *(k for k in self._keys if k != self.current_key_id)]

    def rotated(self, new: Key) -> Keyring:
        """A new keyring with ``new`` as current and every old key still known."""
        return Keyring([new, *self._keys.values()], current=new.key_id)

    def without(self, key_id: str) -> Keyring:
        """A new keyring without a retired key (after re-encrypting its data)."""
        if key_id == self.current_key_id:
            raise ValueError("the current key cannot be removed; rotate first")
        return Keyring((k for k in self._keys.values() if k.key_id != key_id), self.current_key_id)

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt and authenticate ``plaintext`` (bound to ``aad``) with the current key."""
        nonce = os.urandom(NONCE_BYTES)
        header = self._header
        return header + nonce + self._current.aead.encrypt(nonce, plaintext, header + aad)

    def decrypt(self, token: bytes, aad: bytes = b"") -> bytes:
        """Decrypt a token made by :meth:`encrypt` with the same ``aad``.

        Raises:
            UnknownKeyId: the token names a key this keyring lacks.
            DecryptionError: malformed, tampered, or other associated data.
        """
        key, header_len = self._key_for(token)
        header = token[:header_len]
        nonce = token[header_len : header_len + NONCE_BYTES]
        try:
            return key.aead.decrypt(nonce, token[header_len + NONCE_BYTES :], header + aad)
        except InvalidTag:
            raise DecryptionError(
                "authentication failed: the ciphertext was altered, "
                "or the key or associated data differ"
            ) from None

    def key_id_of(self, token: bytes) -> str:
        """The id of the key a token was made with.

        Raises:
            DecryptionError: the token is malformed.
        """
        return _parse_header(token)[0]

    def needs_reencrypt(self, token: bytes) -> bool:
        """Whether a token was made with a key other than the current one."""
        return self.key_id_of(token) != self.current_key_id

    def reencrypt(self, token: bytes, aad: bytes = b"") -> bytes:
        """The same plaintext under the current key (unchanged if already current).

        Raises:
            DecryptionError: as :meth:`decrypt`.
        """
        if not self.needs_reencrypt(token):
            self.decrypt(token, aad)  # still verify: a rotation job must see bad rows
            return token
        return self.encrypt(self.decrypt(token, aad), aad)

    def _key_for(self, token: bytes) -> tuple[Key, int]:
        key_id, header_len = _parse_header(token)
        key = self._keys.get(key_id)
        if key is None:
            raise UnknownKeyId(key_id)
        return key, header_len


def _parse_header(token: bytes) -> tuple[str, int]:
    if not isinstance(token, bytes | bytearray | memoryview):
        raise DecryptionError("a ciphertext is bytes")
    token = bytes(token)
    if len(token) < 2 or token[0] != VERSION:
        raise DecryptionError("not a keyring ciphertext (unknown format version)")
    header_len = 2 + token[1]
    if token[1] == 0 or len(token) < header_len + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("ciphertext is truncated")
    try:
        key_id = token[2:header_len].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("ciphertext has a malformed key id") from None
    if not _KEY_ID.fullmatch(key_id):
        raise DecryptionError("ciphertext has a malformed key id")
    return key_id, header_len
