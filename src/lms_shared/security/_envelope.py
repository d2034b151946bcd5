"""Envelope encryption: a fresh data key per message, wrapped by a KEK.

Each :meth:`Envelope.encrypt` draws a new AES-256 data key (DEK), encrypts
the plaintext with it (AES-256-GCM) and wraps the DEK with the current
key-encryption key (KEK, AES key wrap, RFC 3394). Rotating the KEK only
re-wraps 40 bytes per record (:meth:`Envelope.rewrap`); the data
ciphertext stays as it is. The KEKs are a :class:`Keyring`, read from
``LMS_KEY_ENCRYPTION_KEY`` (or kept in a KMS that hands out the same
bytes).

Layout (bytes)::

    0x02 | len(kek id) | kek id | wrapped DEK (40) | nonce (12) | ciphertext + tag (16)

The data's associated data is the version byte plus the caller's ``aad``
(not the KEK id, so re-wrapping leaves the data ciphertext valid); a
swapped or altered wrapped key fails to unwrap, or yields a key whose tag
check fails.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from pydantic import SecretStr

from lms_shared.security._errors import DecryptionError, UnknownKeyId
from lms_shared.security._keyring import _KEY_ID, KEY_BYTES, NONCE_BYTES, TAG_BYTES, Keyring

__all__ = ["Envelope"]

VERSION = 0x02
WRAPPED_BYTES = KEY_BYTES + 8


class Envelope:
    """Envelope encryption with a keyring of key-encryption keys.

    Args:
        keks: the key-encryption keys; new envelopes use the current one.
    """

    def __init__(self, keks: Keyring) -> None:
        self.keks = keks

    def __repr__(self) -> str:
        return f"Envelope(kek={self.keks.current_key_id!r})"

    @classmethod
    def parse(cls, spec: str | SecretStr) -> Envelope:
        """An envelope from a ``"kid:base64key,..."`` spec (``LMS_KEY_ENCRYPTION_KEY``).

        Raises:
            SettingsError: naming ``LMS_KEY_ENCRYPTION_KEY``.
        """
        return cls(Keyring.parse(spec, variable="LMS_KEY_ENCRYPTION_KEY"))

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt under a fresh data key wrapped by the current KEK."""
        dek = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        kek = self.keks._current
        wrapped = aes_key_wrap(kek.material, dek)
        nonce = os.urandom(NONCE_BYTES)
        kid = kek.key_id.encode()
        body = AESGCM(dek).encrypt(nonce, plaintext, bytes([VERSION]) + aad)
        return bytes([VERSION, len(kid)]) + kid + wrapped + nonce + body

    def decrypt(self, token: bytes, aad: bytes = b"") -> bytes:
        """Unwrap the data key and decrypt.

        Raises:
            UnknownKeyId: the envelope names a KEK the keyring lacks.
            DecryptionError: malformed, tampered, or other associated data.
        """
        _, dek, rest = self._unwrap(token)
        nonce, body = rest[:NONCE_BYTES], rest[NONCE_BYTES:]
        try:
            return AESGCM(dek).decrypt(nonce, body, bytes([VERSION]) + aad)
        except InvalidTag:
            raise DecryptionError(
                "authentication failed: the envelope was altered, or the associated data differ"
            ) from None

    def key_id_of(self, token: bytes) -> str:
        """The id of the KEK that wrapped this envelope's data key."""
        return _parse(token)[0]

    def needs_reencrypt(self, token: bytes) -> bool:
        """Whether the data key is wrapped by a KEK other than the current one."""
        return self.key_id_of(token) != self.keks.current_key_id

    def rewrap(self, token: bytes) -> bytes:
        """The same envelope with its data key wrapped by the current KEK.

        The data ciphertext is not touched (nor checked: use
        :meth:`reencrypt` to verify it as well).
        """
        kid, dek, rest = self._unwrap(token)
        if kid == self.keks.current_key_id:
            return bytes(token)
        kek = self.keks._current
        new_kid = kek.key_id.encode()
        return bytes([VERSION, len(new_kid)]) + new_kid + aes_key_wrap(kek.material, dek) + rest

    def reencrypt(self, token: bytes, aad: bytes = b"") -> bytes:
        """Verify the envelope decrypts with ``aad``, then :meth:`rewrap` it."""
        self.decrypt(token, aad)
        return self.rewrap(token)

    def _unwrap(self, token: bytes) -> tuple[str, bytes, bytes]:
        kid, wrapped, rest = _parse(token)
        try:
            kek = self.keks._keys[kid]
        except KeyError:
            raise UnknownKeyId(kid) from None
        try:
            return kid, aes_key_unwrap(kek.material, wrapped), rest
        except InvalidUnwrap:
            raise DecryptionError(
                "the wrapped data key was altered or wrapped by another key"
            ) from None


def _parse(token: bytes) -> tuple[str, bytes, bytes]:
    if not isinstance(token, bytes | bytearray | memoryview):
        raise DecryptionError("a ciphertext is bytes")
    token = bytes(token)
    if len(token) < 2 or token[0] != VERSION:
        raise DecryptionError("not an envelope (unknown format version)")
    start = 2 + token[1]
    if token[1] == 0 or len(token) < start + WRAPPED_BYTES + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("envelope is truncated")
    try:
        kid = token[2:start].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("envelope has a malformed key id") from None
    if not _KEY_ID.fullmatch(kid):
        raise DecryptionError("envelope has a malformed key id")
    return kid, token[start : start + WRAPPED_BYTES], token[start + WRAPPED_BYTES :]
