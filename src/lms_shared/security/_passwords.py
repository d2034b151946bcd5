"""Password hashing with argon2id (argon2-cffi), including rehash-on-login.

The defaults are RFC 9106's second recommended option (argon2id, t=3,
m=64 MiB, p=4), above OWASP's minimum. When the parameters are raised,
stored hashes are upgraded as users log in::

    ok, new_hash = hasher.verify_and_update(user.password_hash, password)
    if ok and new_hash:
        user.password_hash = new_hash      # store it in the same transaction

Hashing takes tens of milliseconds of CPU on purpose: in async code use
the ``a``-prefixed methods, which run in a worker thread (argon2 releases
the GIL) instead of stalling the event loop. Unknown users are verified
against a dummy hash, so a login's duration does not tell whether the
account exists.
"""

from __future__ import annotations

import asyncio
import os

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from lms_shared.security._errors import PasswordHashError

__all__ = ["PasswordHasher"]


class PasswordHasher:
    """argon2id hashing, verification and parameter upgrades.

    Args:
        time_cost: iterations (RFC 9106 low-memory option: 3).
        memory_cost: KiB of memory per hash (65536 = 64 MiB).
        parallelism: lanes (4).
        max_length: longest password accepted, in characters (refusing
            megabyte "passwords" keeps hashing cost bounded).

    Raises:
        ValueError: parameters below argon2's minimums.
    """

    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_cost: int = 65536,
        parallelism: int = 4,
        max_length: int = 1024,
    ) -> None:
        if time_cost < 1 or parallelism < 1 or memory_cost < 8 * parallelism:
            raise ValueError("argon2 needs time_cost >= 1 and memory_cost >= 8 * parallelism")
        if max_length < 8:
            raise ValueError("max_length must allow at least 8 characters")
        self.max_length = max_length
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=argon2.Type.ID,
        )
        self._dummy: str | None = None

    def __repr__(self) -> str:
        h = self._hasher
        return f"PasswordHasher(t={h.time_cost}, m={h.memory_cost}, p={h.parallelism})"

    def hash(self, password: str) -> str:
        """A salted argon2id hash in PHC string form (``$argon2id$v=19$...``).

        Raises:
            ValueError: the password is empty or longer than ``max_length``.
        """
        self._check(password)
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash``.

        ``None`` (no such user) is checked against a dummy hash and is
        ``False``, taking as long as a real check.

        Raises:
            PasswordHashError: the stored hash is corrupt or not argon2.
        """
        if not password or len(password) > self.max_length:
            return False
        target = stored_hash if stored_hash is not None else self._dummy_hash()
        try:
            ok = self._hasher.verify(target, password)
        except VerifyMismatchError:
            return False
        except (InvalidHashError, VerificationError) as exc:
            raise PasswordHashError("the stored password hash cannot be read") from exc
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether a hash was made with other (older) parameters.

        Raises:
            PasswordHashError: the stored hash is corrupt or not argon2.
        """
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError) as exc:
            raise PasswordHashError("the stored password hash cannot be read") from exc

    def verify_and_update(self, stored_hash: str | None, password: str) -> tuple[bool, str | None]:
        """Verify, and when it matches with outdated parameters, rehash.

        Returns:
            ``(matches, new_hash)``; ``new_hash`` is set only when the
            password matched and the stored hash should be replaced.
        """
        matched = self.verify(stored_hash, password)
        if not matched or stored_hash is None:
            return False, None
        return True, self.hash(password) if self.needs_rehash(stored_hash) else None

    async def ahash(self, password: str) -> str:
        """:meth:`hash` in a worker thread."""
        return await asyncio.to_thread(self.hash, password)

    async def averify(self, stored_hash: str | None, password: str) -> bool:
        """:meth:`verify` in a worker thread."""
        return await asyncio.to_thread(self.verify, stored_hash, password)

    async def averify_and_update(
        self, stored_hash: str | None, password: str
    ) -> tuple[bool, str | None]:
        """:meth:`verify_and_update` in a worker thread."""
        return await asyncio.to_thread(self.verify_and_update, stored_hash, password)

    def _check(self, password: str) -> None:
        if not isinstance(password, str) or not password:
            raise ValueError("a password is a non-empty string")
        if len(password) > self.max_length:
            raise ValueError(f"a password is at most {self.max_length} characters")

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self._hasher.hash(os.urandom(16).hex())
        return self._dummy
