"""Issuing tokens: signing keys, rotation, and the JWKS document they publish.

The identity service holds a :class:`TokenSigner`: a current key that
signs, and previous keys that no longer sign but stay in the JWKS
document until every token they signed has expired. Rotating is one call::

    signer.rotate(SigningKey.generate("RS256"))   # the old current becomes previous

Key ids are RFC 7638 thumbprints unless given. Tokens are RFC 9068 access
tokens: ``typ: at+jwt``, ``iss``, ``aud``, ``sub``, ``iat``, ``nbf``,
``exp``, ``jti``, ``client_id``, plus the principal's claims.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from lms_shared.auth._keys import (
    PublicKey,
    VerificationKey,
    b64url,
    public_jwk,
    thumbprint,
    verification_key,
)
from lms_shared.auth._principal import Principal
from lms_shared.clock import Clock

__all__ = ["SigningAlgorithm", "SigningKey", "TokenSigner"]

SigningAlgorithm = Literal["RS256", "PS256", "ES256", "EdDSA"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_ALGORITHMS: dict[type, tuple[str, ...]] = {
    rsa.RSAPrivateKey: ("RS256", "PS256"),
    ec.EllipticCurvePrivateKey: ("ES256",),
    ed25519.Ed25519PrivateKey: ("EdDSA",),
}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key, its algorithm and its key id.

    Build one with :meth:`generate` or :meth:`from_pem`.
    """

    private_key: PrivateKey
    alg: SigningAlgorithm
    kid: str

    @classmethod
    def generate(cls, alg: SigningAlgorithm = "RS256", *, kid: str | None = None) -> SigningKey:
        """A new random key (RSA 2048, P-256 or Ed25519, as ``alg`` needs)."""
        key: PrivateKey
        if alg in ("RS256", "PS256"):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            key = ec.generate_private_key(ec.SECP256R1())
        elif alg == "EdDSA":
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(f"cannot sign with {alg!r}")
        return cls.from_key(key, alg, kid=kid)

    @classmethod
    def from_key(
        cls, key: PrivateKey, alg: SigningAlgorithm | None = None, *, kid: str | None = None
    ) -> SigningKey:
        """Wrap a :mod:`cryptography` private key.

        Raises:
            ValueError: the key cannot sign with ``alg`` (RSA below 2048
                bits, EC off P-256, another key type).
        """
        family = next((algs for t, algs in _ALGORITHMS.items() if isinstance(key, t)), None)
        if family is None:
            raise ValueError(f"unsupported private key type {type(key).__name__}")
        alg = alg or family[0]  # type: ignore[assignment]
        if alg not in family:
            raise ValueError(f"a {type(key).__name__} cannot sign {alg}")
        # the same checks a verifier applies (size, curve)
        verification_key(key.public_key(), kid=None, algorithms=(alg,))
        return cls(key, alg, kid or thumbprint(key.public_key()))

    @classmethod
    def from_pem(
        cls, pem: str | bytes, alg: SigningAlgorithm | None = None, *, kid: str | None = None
    ) -> SigningKey:
        """Load an unencrypted PEM private key (PKCS#8 or traditional).

        Raises:
            ValueError: not a PEM private key of a supported type.
        """
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(
            key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        ):
            raise ValueError(f"unsupported private key type {type(key).__name__}")
        return cls.from_key(key, alg, kid=kid)

    @property
    def public_key(self) -> PublicKey:
        """The public half."""
        return self.private_key.public_key()

    def to_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (store it as a secret)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_jwk(self) -> dict[str, str]:
        """The public JWK, with ``kid``, ``alg`` and ``use``."""
        return public_jwk(self.public_key, kid=self.kid, alg=self.alg)

    def verification_key(self) -> VerificationKey:
        """The key a verifier uses for tokens this key signs."""
        algorithms = ("EdDSA", "Ed25519") if self.alg == "EdDSA" else (self.alg,)
        return verification_key(self.public_key, kid=self.kid, algorithms=algorithms)

    def sign(self, data: bytes) -> bytes:
        """The JWS signature of ``data`` (ES256 as raw ``r || s``)."""
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            if self.alg == "PS256":
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
                return key.sign(data, pss, hashes.SHA256())
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return key.sign(data)


def _segment(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


class TokenSigner:
    """Signs access tokens with a current key; publishes current and previous keys.

    Args:
        issuer: the ``iss`` of every token (the identity service's URL).
        keys: the current key first, then previous keys still published.
        clock: gives ``iat``, ``nbf`` and ``exp``.
        ttl: default lifetime of a token, in seconds.
        max_previous: previous keys kept by :meth:`rotate`.

    Raises:
        ValueError: no key, or two keys share a kid.
    """

    def __init__(
        self,
        issuer: str,
        keys: Sequence[SigningKey],
        *,
        clock: Clock,
        ttl: float = 900.0,
        max_previous: int = 2,
    ) -> None:
        if not keys:
            raise ValueError("a signer needs at least one key")
        if len({k.kid for k in keys}) != len(keys):
            raise ValueError("two signing keys share a kid")
        if ttl <= 0:
            raise ValueError("a token lifetime must be positive")
        self.issuer = issuer
        self.clock = clock
        self.ttl = ttl
        self.max_previous = max_previous
        self._keys = list(keys)
        self._publish()

    @property
    def current(self) -> SigningKey:
        """The key that signs."""
        return self._keys[0]

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """The current key, then the previous ones."""
        return tuple(self._keys)

    def rotate(self, new: SigningKey) -> SigningKey:
        """Sign with ``new`` from now on; the old current key stays published.

        Returns:
            The key that was current.
        """
        if any(k.kid == new.kid for k in self._keys):
            raise ValueError(f"a key with kid {new.kid!r} is already published")
        old = self._keys[0]
        self._keys = [new, *self._keys[: self.max_previous]]
        self._publish()
        return old

    def retire(self, kid: str) -> None:
        """Stop publishing a previous key (its tokens stop verifying)."""
        if kid == self.current.kid:
            raise ValueError("the current key cannot be retired; rotate first")
        self._keys = [k for k in self._keys if k.kid != kid]
        self._publish()

    def _publish(self) -> None:
        self._jwks = {"keys": [k.public_jwk() for k in self._keys]}
        self._jwks_bytes = json.dumps(self._jwks, separators=(",", ":")).encode()

    def jwks(self) -> dict[str, Any]:
        """The JWKS document (public keys only)."""
        return json.loads(self._jwks_bytes)  # type: ignore[no-any-return]

    def jwks_bytes(self) -> bytes:
        """The JWKS document, serialised once per rotation."""
        return self._jwks_bytes

    def verification_keys(self) -> list[VerificationKey]:
        """Every published key, for a verifier inside the identity service."""
        return [k.verification_key() for k in self._keys]

    def sign(self, claims: Mapping[str, Any], *, typ: str = "at+jwt") -> str:
        """Sign ``claims`` as they are (no claim is added)."""
        key = self.current
        header = _segment({"alg": key.alg, "kid": key.kid, "typ": typ})
        signing_input = f"{header}.{_segment(claims)}"
        return f"{signing_input}.{b64url(key.sign(signing_input.encode('ascii')))}"

    def issue(
        self,
        principal: Principal,
        *,
        audience: str | Iterable[str],
        ttl: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """An access token for ``principal``, for ``audience``.

        Args:
            principal: whose token it is (its claims go in).
            audience: the service (or services) it is meant for.
            ttl: lifetime in seconds; the signer's default otherwise.
            extra: more claims (they cannot replace the registered ones).
        """
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {**(extra or {}), **principal.to_claims()}
        claims.update(
            iss=self.issuer,
            aud=audience if isinstance(audience, str) else list(audience),
            iat=now,
            nbf=now,
            exp=now + int(ttl or self.ttl),
            jti=uuid.uuid4().hex,
        )
        claims.setdefault("client_id", principal.client_id or principal.subject)
        return self.sign(claims)
