"""Verification keys: JWK import and export, one verify function per algorithm.

A :class:`VerificationKey` holds one public key (or the HS256 secret) and
the verify functions of the algorithms it may be used with. The function
is picked by the key's own type, never by the token: an RSA key has no
HS256 function, so "HS256 signed with the RSA public key" cannot verify
(RFC 8725 section 2.1). A JWK that names its ``alg`` is used with that
algorithm only.

Supported: ``RS256`` and ``PS256`` (RSA of at least 2048 bits), ``ES256``
(P-256), ``EdDSA`` and its RFC 9864 name ``Ed25519`` (Ed25519), and
``HS256`` (a secret of at least 32 bytes, configured, never from a JWKS).
The verify functions call :mod:`cryptography` (OpenSSL) with padding and
hash objects built once, here, at key load.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "PublicKey",
    "VerificationKey",
    "b64url",
    "hs256_key",
    "key_from_jwk",
    "public_jwk",
    "thumbprint",
    "verification_key",
]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
Verify = Callable[[bytes, bytes], bool]

ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "PS256", "ES256", "EdDSA", "Ed25519"})
_RSA = ("RS256", "PS256")
_OKP = ("EdDSA", "Ed25519")
MIN_RSA_BITS = 2048
MIN_HMAC_BYTES = 32
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE writes binary values."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_raw(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError(f"JWK member {name!r} is missing")
    return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)


def _b64url_int(value: object, name: str) -> int:
    return int.from_bytes(_b64url_raw(value, name), "big")


def _b64url_bytes(value: object, name: str, size: int) -> bytes:
    raw = _b64url_raw(value, name)
    if len(raw) != size:
        raise ValueError(f"JWK member {name!r} is not {size} bytes")
    return raw


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A key and the verify functions of the algorithms it may sign with.

    Attributes:
        kid: the key id, or ``None`` for a single configured key.
        kty: ``RSA``, ``EC``, ``OKP`` or ``oct``.
        verifiers: algorithm to ``verify(signing_input, signature) -> bool``.
    """

    kid: str | None
    kty: str
    verifiers: Mapping[str, Verify]

    @property
    def algorithms(self) -> frozenset[str]:
        """The algorithms this key verifies."""
        return frozenset(self.verifiers)


def _rsa_verifiers(key: rsa.RSAPublicKey) -> dict[str, Verify]:
    pkcs1 = padding.PKCS1v15()
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    sha256 = hashes.SHA256()
    size = (key.key_size + 7) // 8

    def rs256(data: bytes, sig: bytes) -> bool:
        if len(sig) != size:
            return False
        try:
            key.verify(sig, data, pkcs1, sha256)
        except InvalidSignature:
            return False
        return True

    def ps256(data: bytes, sig: bytes) -> bool:
        if len(sig) != size:
            return False
        try:
            key.verify(sig, data, pss, sha256)
        except InvalidSignature:
            return False
        return True

    return {"RS256": rs256, "PS256": ps256}


def _es256_verifier(key: ec.EllipticCurvePublicKey) -> Verify:
    ecdsa = ec.ECDSA(hashes.SHA256())

    def es256(data: bytes, sig: bytes) -> bool:
        if len(sig) != 64:  # JWS: r || s, 32 bytes each (RFC 7518 3.4), not DER
            return False
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            key.verify(der, data, ecdsa)
        except InvalidSignature:
            return False
        return True

    return es256


def _eddsa_verifier(key: ed25519.Ed25519PublicKey) -> Verify:
    def eddsa(data: bytes, sig: bytes) -> bool:
        if len(sig) != 64:
            return False
        try:
            key.verify(sig, data)
        except InvalidSignature:
            return False
        return True

    return eddsa


def verification_key(
    key: PublicKey, *, kid: str | None, algorithms: Collection[str]
) -> VerificationKey:
    """Wrap a public key with the verify functions of ``algorithms`` it supports.

    Raises:
        ValueError: the key is too weak, on another curve, or supports none
            of ``algorithms``.
    """
    verifiers: dict[str, Verify]
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA keys need at least {MIN_RSA_BITS} bits, got {key.key_size}")
        kty, verifiers = "RSA", _rsa_verifiers(key)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError(f"EC keys must be on P-256, got {key.curve.name}")
        kty, verifiers = "EC", {"ES256": _es256_verifier(key)}
    elif isinstance(key, ed25519.Ed25519PublicKey):
        verify = _eddsa_verifier(key)
        kty, verifiers = "OKP", {"EdDSA": verify, "Ed25519": verify}
    else:
        raise ValueError(f"unsupported key type {type(key).__name__}")
    chosen = {alg: fn for alg, fn in verifiers.items() if alg in algorithms}
    if not chosen:
        raise ValueError(f"a {kty} key supports none of the allowed algorithms")
    return VerificationKey(kid, kty, chosen)


def hs256_key(secret: bytes, *, kid: str | None = None) -> VerificationKey:
    """The HS256 key of a shared secret (at least 32 bytes, RFC 7518 3.2).

    Raises:
        ValueError: the secret is shorter than 32 bytes.
    """
    if len(secret) < MIN_HMAC_BYTES:
        raise ValueError(f"an HS256 secret needs at least {MIN_HMAC_BYTES} bytes")

    def hs256(data: bytes, sig: bytes) -> bool:
        return hmac.compare_digest(hmac.new(secret, data, hashlib.sha256).digest(), sig)

    return VerificationKey(kid, "oct", {"HS256": hs256})


def key_from_jwk(jwk: Mapping[str, Any], *, algorithms: Collection[str]) -> VerificationKey:
    """Import one public signing key of a JWKS document.

    Raises:
        ValueError: the JWK has no ``kid``, is not a signing key, carries
            private members, is symmetric, or is malformed or weak.
    """
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("JWK has no kid")
    if any(member in jwk for member in _PRIVATE_MEMBERS):
        raise ValueError(f"JWK {kid!r} carries private key material")
    if jwk.get("use", "sig") != "sig":
        raise ValueError(f"JWK {kid!r} is not a signing key")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise ValueError(f"JWK {kid!r} may not verify")
    alg = jwk.get("alg")
    if alg is not None:
        if alg not in algorithms:
            raise ValueError(f"JWK {kid!r} is for algorithm {alg!r}, which is not allowed")
        # EdDSA and Ed25519 (RFC 9864) name the same algorithm for an Ed25519 key
        algorithms = _OKP if alg in _OKP else (alg,)
    kty = jwk.get("kty")
    public: PublicKey
    if kty == "RSA":
        e, n = _b64url_int(jwk.get("e"), "e"), _b64url_int(jwk.get("n"), "n")
        public = rsa.RSAPublicNumbers(e, n).public_key()
    elif kty == "EC":
        if jwk.get("crv") != "P-256":
            raise ValueError(f"JWK {kid!r} is not on P-256")
        x = int.from_bytes(_b64url_bytes(jwk.get("x"), "x", 32), "big")
        y = int.from_bytes(_b64url_bytes(jwk.get("y"), "y", 32), "big")
        public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    elif kty == "OKP":
        if jwk.get("crv") != "Ed25519":
            raise ValueError(f"JWK {kid!r} is not an Ed25519 key")
        public = ed25519.Ed25519PublicKey.from_public_bytes(_b64url_bytes(jwk.get("x"), "x", 32))
    else:
        raise ValueError(f"JWK {kid!r} has unsupported key type {kty!r}")
    return verification_key(public, kid=kid, algorithms=algorithms)


def _public_members(key: PublicKey) -> dict[str, str]:
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        return {"e": b64url(e), "kty": "RSA", "n": b64url(n)}
    if isinstance(key, ec.EllipticCurvePublicKey):
        point = key.public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": b64url(point.x.to_bytes(32, "big")),
            "y": b64url(point.y.to_bytes(32, "big")),
        }
    raw = key.public_bytes_raw()
    return {"crv": "Ed25519", "kty": "OKP", "x": b64url(raw)}


def thumbprint(key: PublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): a stable key id."""
    canonical = json.dumps(_public_members(key), separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(key: PublicKey, *, kid: str, alg: str) -> dict[str, str]:
    """The public JWK of a key, as a JWKS document publishes it."""
    return {**_public_members(key), "kid": kid, "alg": alg, "use": "sig"}
