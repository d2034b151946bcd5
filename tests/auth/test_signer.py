"""Issuing tokens: keys, rotation, the JWKS document, the identity service's endpoints."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from lms_shared.auth import (
    InvalidToken,
    Principal,
    SigningKey,
    StaticKeys,
    TokenSigner,
    TokenVerifier,
    VerifierConfig,
)
from lms_shared.auth._keys import thumbprint
from lms_shared.testing import ManualClock

from .conftest import ISSUER

ADA = Principal(subject="ada", roles=frozenset({"student"}))


def verifier(keys: StaticKeys, clock: ManualClock) -> TokenVerifier:
    return TokenVerifier(VerifierConfig(issuer=ISSUER, audiences=("courses",)), keys, clock=clock)


def test_rfc_7638_thumbprint() -> None:
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD"
        "W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vM"
        "QFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    modulus = int.from_bytes(base64.urlsafe_b64decode(n + "=="), "big")
    key = rsa.RSAPublicNumbers(65537, modulus).public_key()
    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_the_jwks_document_publishes_public_keys_only(keys: dict[str, SigningKey]) -> None:
    signer = TokenSigner(ISSUER, list(keys.values()), clock=ManualClock())
    document = signer.jwks()
    assert [k["kid"] for k in document["keys"]] == [k.kid for k in keys.values()]
    for jwk in document["keys"]:
        assert jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    assert {(k["kty"], k["alg"]) for k in document["keys"]} == {
        ("RSA", "RS256"),
        ("RSA", "PS256"),
        ("EC", "ES256"),
        ("OKP", "EdDSA"),
    }
    assert signer.jwks_bytes().startswith(b'{"keys":[{')


async def test_rotation_keeps_old_tokens_valid_until_retired(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    signer = TokenSigner(ISSUER, [keys["RS256"]], clock=clock, max_previous=1)
    before = signer.issue(ADA, audience="courses")
    old = signer.rotate(keys["ES256"])
    assert old is keys["RS256"]
    assert signer.current is keys["ES256"]
    after = signer.issue(ADA, audience="courses")
    published = StaticKeys(signer.verification_keys())
    check = verifier(published, clock)
    assert (await check.verify(before)).subject == "ada"
    assert (await check.verify(after)).subject == "ada"
    assert [k["kid"] for k in signer.jwks()["keys"]] == [keys["ES256"].kid, keys["RS256"].kid]
    signer.rotate(keys["EdDSA"])  # max_previous=1: the RS256 key drops out
    assert [k.kid for k in signer.keys] == [keys["EdDSA"].kid, keys["ES256"].kid]
    signer.retire(keys["ES256"].kid)
    with pytest.raises(InvalidToken, match="unknown"):
        await verifier(StaticKeys(signer.verification_keys()), clock).verify(after)
    with pytest.raises(ValueError, match="rotate first"):
        signer.retire(keys["EdDSA"].kid)
    with pytest.raises(ValueError, match="already published"):
        signer.rotate(keys["EdDSA"])


def test_issued_claims(signer: TokenSigner, clock: ManualClock) -> None:
    import jwt

    who = Principal(
        subject="ada",
        tenant="northwind",
        roles=frozenset({"student"}),
        course_roles={"c1": frozenset({"teaching_assistant"})},
        scopes=frozenset({"course:read"}),
        name="Ada",
    )
    token = signer.issue(who, audience=["courses", "grading"], ttl=60, extra={"sub": "eve", "x": 1})
    claims = jwt.decode(token, options={"verify_signature": False})
    now = int(clock.now().timestamp())
    jti = claims.pop("jti")
    assert len(jti) == 32
    assert claims == {
        "x": 1,
        "sub": "ada",  # extra claims never replace the principal's
        "tenant": "northwind",
        "roles": ["student"],
        "course_roles": {"c1": ["teaching_assistant"]},
        "scope": "course:read",
        "name": "Ada",
        "iss": ISSUER,
        "aud": ["courses", "grading"],
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "client_id": "ada",
    }
    assert signer.issue(who, audience="courses") != signer.issue(who, audience="courses")


def test_pem_round_trip_and_kid(keys: dict[str, SigningKey]) -> None:
    for key in keys.values():
        again = SigningKey.from_pem(key.to_pem(), key.alg)
        assert again.kid == key.kid == thumbprint(key.public_key)
        assert again.public_jwk() == key.public_jwk()
    assert SigningKey.from_pem(keys["RS256"].to_pem().decode(), kid="k1").kid == "k1"


def test_weak_or_unsupported_keys_are_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="2048"):
        SigningKey.from_key(weak)
    with pytest.raises(ValueError, match="P-256"):
        SigningKey.from_key(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError, match="cannot sign ES256"):
        SigningKey.from_key(rsa.generate_private_key(65537, 2048), "ES256")
    with pytest.raises(ValueError, match="cannot sign"):
        SigningKey.generate("HS256")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key"):
        SigningKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")


def test_signer_arguments_are_checked(keys: dict[str, SigningKey]) -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="at least one key"):
        TokenSigner(ISSUER, [], clock=clock)
    with pytest.raises(ValueError, match="share a kid"):
        TokenSigner(ISSUER, [keys["RS256"], keys["RS256"]], clock=clock)
    with pytest.raises(ValueError, match="positive"):
        TokenSigner(ISSUER, [keys["RS256"]], clock=clock, ttl=0)
