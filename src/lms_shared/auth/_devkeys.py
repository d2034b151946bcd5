"""Tokens for local work: a development signing key and the JWKS local services trust.

``lms-shared token mint`` signs access tokens with an Ed25519 key kept in
``<state_dir>/dev-auth/`` (``signing-key.pem``, mode 0600, made on first
use) and publishes its public half beside it (``jwks.json``). In
development, a service configured with no key source at all (no
``LMS_AUTH_JWKS_URL``, ``LMS_AUTH_HS256_SECRET``, ``LMS_AUTH_ISSUER`` or
signing keys) trusts that JWKS through :class:`DevKeys`: issuer
:data:`DEV_ISSUER`, audience :data:`DEV_AUDIENCE` beside its own. It
reads the file when it starts and again when a token names a key it does
not know and the file changed, so it does not matter whether ``serve`` or
``mint`` runs first, and deleting the folder makes a new key.

Anyone who can read the state folder can mint any role: everything here
refuses ``LMS_ENV=production`` with :class:`DevAuthRefused`.

Two processes making the key at once agree on one: each writes a private
temporary file and hard-links it to the key's name (``os.link`` fails for
the one that lost, which then reads the winner's key); the JWKS is
replaced atomically. The files are small and read only at start-up and
when they changed, so they are read synchronously.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from lms_shared.auth._compact import strict_json
from lms_shared.auth._keys import VerificationKey, key_from_jwk
from lms_shared.auth._principal import Principal
from lms_shared.auth._signer import SigningKey, TokenSigner
from lms_shared.clock import Clock
from lms_shared.errors import ConfigurationError
from lms_shared.jsonlimits import JsonLimitError, scan_depth
from lms_shared.observability import get_logger
from lms_shared.settings import Settings

__all__ = [
    "DEV_AUDIENCE",
    "DEV_ISSUER",
    "DevAuthError",
    "DevAuthRefused",
    "DevKeys",
    "dev_auth_dir",
    "dev_signing_key",
    "mint_dev_token",
    "read_dev_jwks",
    "refuse_in_production",
    "trusts_dev_keys",
]

DEV_ISSUER = "urn:lms-shared:dev"
"""The ``iss`` of development tokens."""
DEV_AUDIENCE = "urn:lms-shared:dev"
"""The default ``aud`` of development tokens; every local service accepts it."""
FOLDER = "dev-auth"
KEY_FILE = "signing-key.pem"
JWKS_FILE = "jwks.json"
MAX_KEY_BYTES = 4096
MAX_JWKS_BYTES = 16 * 1024
MAX_JWKS_DEPTH = 8
MAX_JWKS_KEYS = 8
MAX_TTL = 7 * 24 * 3600
_ROLE = re.compile(r"[a-z][a-z0-9_-]{0,63}")


class DevAuthError(ConfigurationError):
    """The development key or its JWKS cannot be used (unreadable, malformed, exposed)."""


class DevAuthRefused(DevAuthError):
    """Development tokens were asked for with ``LMS_ENV=production``."""


def refuse_in_production(env: str) -> None:
    """Raise :class:`DevAuthRefused` when ``env`` is ``production``."""
    if env == "production":
        raise DevAuthRefused(
            "development tokens are refused when LMS_ENV=production: "
            "set LMS_AUTH_JWKS_URL and LMS_AUTH_ISSUER to trust the identity service"
        )


def dev_auth_dir(state_dir: Path) -> Path:
    """The folder of the development key and its JWKS under ``state_dir``."""
    return Path(state_dir) / FOLDER


def trusts_dev_keys(settings: Settings) -> bool:
    """Whether a service with ``settings`` trusts the development JWKS.

    Only in development (``LMS_ENV=development``, the default) and only when
    no key source or issuer is configured.
    """
    configured = (
        settings.auth_jwks_url,
        settings.auth_hs256_secret,
        settings.auth_issuer,
        settings.auth_signing_keys,
    )
    return settings.env == "development" and not any(configured)


def dev_signing_key(state_dir: Path, *, env: str) -> tuple[SigningKey, bool]:
    """The development signing key, made on first use, and whether it was made now.

    Also (re)writes the JWKS beside it when it is missing or stale.

    Raises:
        DevAuthRefused: ``env`` is ``production`` (nothing is read or written).
        DevAuthError: the key file is unreadable, too large, not a key, or
            readable by other users.
    """
    refuse_in_production(env)
    folder = dev_auth_dir(state_dir)
    path = folder / KEY_FILE
    created = False
    try:
        key = _read_key(path)
    except FileNotFoundError:
        created = _create_key(folder, path)
        key = _read_key(path)
    _publish(folder / JWKS_FILE, key)
    return key, created


def mint_dev_token(
    state_dir: Path,
    *,
    env: str,
    clock: Clock,
    subject: str,
    roles: Iterable[str] = (),
    course_roles: Mapping[str, Iterable[str]] | None = None,
    tenant: str | None = None,
    audience: str | Iterable[str] = DEV_AUDIENCE,
    ttl: float = 3600.0,
) -> str:
    """A signed access token for a user, which local services in development accept.

    The claims are those :class:`~lms_shared.auth.Principal` reads: ``sub``,
    ``roles``, ``course_roles``, ``tenant``, with ``iss`` :data:`DEV_ISSUER`.

    Raises:
        DevAuthRefused: ``env`` is ``production``.
        DevAuthError: the key cannot be used.
        ValueError: an empty subject, a malformed role, or a lifetime outside
            one second to seven days.
    """
    refuse_in_production(env)
    if not 1 <= ttl <= MAX_TTL:
        raise ValueError(f"a token lifetime is 1 to {MAX_TTL} seconds, got {ttl}")
    principal = Principal(
        subject=subject,
        tenant=tenant,
        roles=frozenset(_roles(roles)),
        course_roles={c: frozenset(_roles(r)) for c, r in (course_roles or {}).items()},
    )
    key, _ = dev_signing_key(state_dir, env=env)
    signer = TokenSigner(DEV_ISSUER, [key], clock=clock, ttl=ttl)
    return signer.issue(principal, audience=audience)


def _roles(roles: Iterable[str]) -> list[str]:
    found = list(roles)
    for role in found:
        if _ROLE.fullmatch(role) is None:
            raise ValueError(f"a role is lower-case letters, digits, _ and -, got {role!r}")
    return found


def _read_key(path: Path) -> SigningKey:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if info.st_mode & 0o077:
            raise DevAuthError(f"{path} is readable by other users: chmod 600 it, or delete it")
        data = file.read(MAX_KEY_BYTES + 1)
    if len(data) > MAX_KEY_BYTES:
        raise DevAuthError(f"{path} is larger than {MAX_KEY_BYTES} bytes: not a signing key")
    try:
        return SigningKey.from_pem(data)
    except ValueError as exc:
        raise DevAuthError(f"{path} is not a usable private key ({exc}): delete it") from None


def _create_key(folder: Path, path: Path) -> bool:
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = SigningKey.generate("EdDSA").to_pem()
    temporary = folder / f".{KEY_FILE}.{secrets.token_hex(8)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
        os.link(temporary, path)  # exclusive: another process may have made it first
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    return True


def _publish(path: Path, key: SigningKey) -> None:
    document = json.dumps({"keys": [key.public_jwk()]}, indent=2).encode() + b"\n"
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == document:
            return
    temporary = path.with_name(f".{JWKS_FILE}.{secrets.token_hex(8)}")
    temporary.write_bytes(document)
    os.replace(temporary, path)


def read_dev_jwks(data: bytes, *, algorithms: Collection[str]) -> dict[str, VerificationKey]:
    """The keys of a development JWKS document, by key id.

    Raises:
        DevAuthError: the document is too large or deep, not strict JSON,
            or holds no usable key.
    """
    if len(data) > MAX_JWKS_BYTES:
        raise DevAuthError(f"the development JWKS is larger than {MAX_JWKS_BYTES} bytes")
    try:
        scan_depth(data, MAX_JWKS_DEPTH)
        document = strict_json(data)
    except JsonLimitError as exc:
        raise DevAuthError(f"the development JWKS is unusable: {exc}") from None
    except ValueError:  # UnicodeDecodeError is one
        raise DevAuthError("the development JWKS is not strict JSON") from None
    raw = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_JWKS_KEYS:
        raise DevAuthError(f"the development JWKS needs a 'keys' list of 1 to {MAX_JWKS_KEYS}")
    keys: dict[str, VerificationKey] = {}
    for jwk in raw:
        try:
            if not isinstance(jwk, dict):
                raise ValueError("a key is not an object")
            key = key_from_jwk(jwk, algorithms=algorithms)
        except ValueError as exc:
            raise DevAuthError(f"the development JWKS holds an unusable key: {exc}") from None
        keys[str(key.kid)] = key
    return keys


class DevKeys:
    """The development JWKS as a key source: read at start, again when it changed.

    Args:
        state_dir: the state folder (``LMS_STATE_DIR``).
        env: the deployment environment (``LMS_ENV``).
        algorithms: algorithms the keys may be used with.

    Raises:
        DevAuthRefused: ``env`` is ``production``.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        env: str,
        algorithms: Collection[str] = ("EdDSA", "Ed25519"),
    ) -> None:
        refuse_in_production(env)
        self.name = "auth-dev-keys"
        self.path = dev_auth_dir(state_dir) / JWKS_FILE
        self.algorithms = frozenset(algorithms)
        self._keys: dict[str, VerificationKey] = {}
        self._stamp: tuple[int, int, int] | None = None
        self.log = get_logger("lms.auth.dev", path=str(self.path))

    @property
    def loaded(self) -> bool:
        """Always ``True``: before the first mint, every token is simply unknown (401)."""
        return True

    def find(self, kid: str | None) -> VerificationKey | None:
        """The key named ``kid`` (or the only key, for a token without one)."""
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def refresh_for(self, kid: str | None) -> VerificationKey | None:
        """Read the file again if it changed (a key made after start-up), then :meth:`find`."""
        try:
            self.reload()
        except DevAuthError as exc:
            self.log.warning(
                "development JWKS unusable; keeping the keys read before", error=str(exc)
            )
        return self.find(kid)

    def reload(self) -> None:
        """Read the JWKS file if it changed since the last read (none: no key yet).

        Raises:
            DevAuthError: the file is unreadable or malformed (the keys read
                before are kept).
        """
        try:
            info = self.path.stat()
        except FileNotFoundError:
            self._keys, self._stamp = {}, None
            return
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        if stamp == self._stamp:
            return
        if not stat.S_ISREG(info.st_mode):
            raise DevAuthError(f"{self.path} is not a file")
        with self.path.open("rb") as file:
            data = file.read(MAX_JWKS_BYTES + 1)
        self._keys = read_dev_jwks(data, algorithms=self.algorithms)
        self._stamp = stamp

    async def start(self) -> None:
        """Read the JWKS, if a development key was made already.

        Raises:
            DevAuthError: the file is unusable (delete the folder to start over).
        """
        self.reload()
        self.log.info(
            "trusting development tokens (lms-shared token mint)",
            issuer=DEV_ISSUER,
            keys=len(self._keys),
        )

    async def stop(self) -> None:
        """Nothing to release."""

    async def ping(self) -> str:
        """What is trusted."""
        return f"development keys from {self.path} ({len(self._keys)} loaded)"
