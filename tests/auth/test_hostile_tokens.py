"""Hostile tokens over HTTP: each one is a 401 problem with a challenge, never a 500.

The protected service fetches the identity service's JWKS over a real
socket (uvicorn on a free port), exactly as in production.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lms_shared import Service
from lms_shared.auth import SigningKey
from lms_shared.testing import service_client

from .conftest import ISSUER, START

NOW = int(START.timestamp())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(value: Any) -> str:
    return b64(value if isinstance(value, bytes) else json.dumps(value).encode())


def signed(header: dict[str, Any], payload: Any, key: SigningKey) -> str:
    """Sign any header and payload (a dict, or an already encoded segment)."""
    signing_input = f"{seg(header)}.{payload if isinstance(payload, str) else seg(payload)}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


def hs256(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{seg(header)}.{seg(payload)}"
    return (
        f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    )


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def noncanonical(header: dict[str, Any]) -> str:
    """The header's base64url with unused trailing bits set: same bytes, other text."""
    pad = ""
    while len(seg({**header, "x": pad})) % 4 == 0:
        pad += "x"
    text = seg({**header, "x": pad})
    return text[:-1] + ALPHABET[ALPHABET.index(text[-1]) + 1]


CLAIMS = {
    "iss": ISSUER,
    "aud": "courses",
    "sub": "mallory",
    "iat": NOW,
    "nbf": NOW,
    "exp": NOW + 900,
    "roles": ["student"],
}


def corpus(
    keys: dict[str, SigningKey], attacker: dict[str, SigningKey]
) -> dict[str, tuple[Any, str]]:
    """Case name -> (token, or raw header bytes; words the problem detail must contain)."""
    rsa, es, evil = keys["RS256"], keys["ES256"], attacker["RS256"]
    head = {"alg": "RS256", "kid": rsa.kid, "typ": "at+jwt"}
    good = signed(head, CLAIMS, rsa)
    h, p, s = good.split(".")
    pem = rsa.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    es_head = {"alg": "ES256", "kid": es.kid, "typ": "at+jwt"}
    es_input = f"{seg(es_head)}.{seg(CLAIMS)}"
    der = es.private_key.sign(es_input.encode(), ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg, union-attr]
    foreign_ec = SigningKey.from_key(ec.generate_private_key(ec.SECP256R1()))
    flipped = s[:10] + ("A" if s[10] != "A" else "B") + s[11:]
    duplicate_alg = seg(b'{"alg":"RS256","alg":"none","kid":"x"}')
    duplicate_sub = seg(json.dumps(CLAIMS)[:-1].encode() + b', "sub": "admin"}')

    def claims(**changes: Any) -> str:
        body = {k: v for k, v in {**CLAIMS, **changes}.items() if v is not None}
        return signed(head, body, rsa)

    def header(**changes: Any) -> str:
        return signed({**head, **changes}, CLAIMS, rsa)

    def none(alg: str, **extra: Any) -> str:
        return f"{seg({'alg': alg, 'typ': 'at+jwt', **extra})}.{p}.{s}"

    return {
        "alg-none-unsigned": (f"{seg({'alg': 'none'})}.{p}.", "not signed"),
        "alg-none": (none("none"), "alg none"),
        "alg-None": (none("None"), "alg none"),
        "alg-NONE": (none("NONE"), "alg none"),
        "alg-nOnE": (none("nOnE"), "alg none"),
        "alg-none-spaced": (none(" none "), "alg none"),
        "alg-none-with-kid": (none("none", kid=rsa.kid), "alg none"),
        "alg-missing": (f"{seg({'kid': rsa.kid})}.{p}.{s}", "no algorithm"),
        "alg-unknown": (none("RS512"), "'RS512' is not accepted"),
        "hs256-keyed-with-rsa-public-pem": (
            hs256({**head, "alg": "HS256"}, CLAIMS, pem),
            "'HS256' is not accepted",
        ),
        "hs256-keyed-with-rsa-jwk": (
            hs256({**head, "alg": "HS256"}, CLAIMS, json.dumps(rsa.public_jwk()).encode()),
            "'HS256' is not accepted",
        ),
        "es256-header-on-rsa-kid": (
            signed({**head, "alg": "ES256"}, CLAIMS, attacker["ES256"]),
            "does not match its key",
        ),
        "unknown-kid": (signed({**head, "kid": "no-such-key"}, CLAIMS, evil), "key is unknown"),
        "no-kid": (signed({"alg": "RS256", "typ": "at+jwt"}, CLAIMS, rsa), "does not name its key"),
        "kid-path-traversal": (header(kid="../../../../etc/passwd"), "key id is malformed"),
        "kid-sql-injection": (header(kid="x' OR '1'='1' --"), "key id is malformed"),
        "kid-nul-byte": (header(kid="key\u0000"), "key id is malformed"),
        "kid-not-a-string": (header(kid=42), "key id is malformed"),
        "kid-too-long": (header(kid="k" * 300), "key id is malformed"),
        "jku-header": (signed({**head, "jku": "https://evil.example/jwks"}, CLAIMS, evil), "'jku'"),
        "x5u-header": (header(x5u="https://evil.example/cert.pem"), "'x5u'"),
        "jwk-header": (
            signed({**head, "kid": evil.kid, "jwk": evil.public_jwk()}, CLAIMS, evil),
            "'jwk'",
        ),
        "x5c-header": (header(x5c=["MIIBIjANBgkq"]), "'x5c'"),
        "crit-unknown": (header(crit=["urn:example:unknown"]), "'crit'"),
        "crit-exp": (header(crit=["exp"]), "'crit'"),
        "b64-false": (header(b64=False), "'b64'"),
        "cty-nested-jwt": (header(cty="JWT"), "'cty'"),
        "typ-jwt-not-an-access-token": (header(typ="JWT"), "type is not at+jwt"),
        "typ-missing": (signed({"alg": "RS256", "kid": rsa.kid}, CLAIMS, rsa), "type is not"),
        "expired": (claims(exp=NOW - 31, iat=NOW - 931, nbf=NOW - 931), "expired"),
        "nbf-in-the-future": (claims(nbf=NOW + 3600), "not valid yet"),
        "iat-in-the-future": (claims(iat=NOW + 3600), "issued in the future"),
        "wrong-issuer": (claims(iss="https://evil.example"), "issuer is not trusted"),
        "issuer-other-case": (claims(iss=ISSUER.upper()), "issuer is not trusted"),
        "wrong-audience": (claims(aud="grading"), "not meant for this service"),
        "audience-empty-list": (claims(aud=[]), "not meant for this service"),
        "audience-numbers": (claims(aud=[1, 2]), "not meant for this service"),
        "missing-exp": (claims(exp=None), "no 'exp' claim"),
        "missing-sub": (claims(sub=None), "no 'sub' claim"),
        "missing-iat": (claims(iat=None), "no 'iat' claim"),
        "exp-as-string": (claims(exp=str(NOW + 900)), "NumericDate"),
        "exp-as-boolean": (claims(exp=True), "NumericDate"),
        "exp-huge": (claims(exp=10**30), "NumericDate"),
        "roles-not-a-list": (claims(roles="admin"), "'roles' claim"),
        "kind-api-key-claimed": (claims(kind="api_key"), "'kind' claim"),
        "course-roles-not-an-object": (claims(course_roles=["c1"]), "'course_roles' claim"),
        "tampered-payload": (
            f"{h}.{seg({**CLAIMS, 'roles': ['admin']})}.{s}",
            "signature is invalid",
        ),
        "tampered-signature": (f"{h}.{p}.{flipped}", "signature is invalid"),
        "truncated-signature": (f"{h}.{p}.{s[:-8]}", "signature is "),
        "signed-by-another-key": (signed(head, CLAIMS, evil), "signature is invalid"),
        "es256-signature-as-der": (f"{es_input}.{b64(der)}", "signature is invalid"),
        "es256-foreign-ec-key": (signed(es_head, CLAIMS, foreign_ec), "signature is invalid"),
        "header-bad-base64": (f"eyJ*bGci.{p}.{s}", "header is not base64url"),
        "header-padded": (f"{h}=.{p}.{s}", "header is not base64url"),
        "signature-padded": (f"{h}.{p}.{s}==", "signature is not base64url"),
        "header-not-canonical": (f"{noncanonical(head)}.{p}.{s}", "not canonical"),
        "header-not-json": (f"{seg(b'not json')}.{p}.{s}", "header is not a JSON object"),
        "header-json-array": (f"{seg([1, 2])}.{p}.{s}", "header is not a JSON object"),
        "header-duplicate-alg": (f"{duplicate_alg}.{p}.{s}", "header is not a JSON object"),
        "payload-duplicate-sub": (signed(head, duplicate_sub, rsa), "payload is not a JSON"),
        "payload-not-json": (signed(head, seg(b"garbage"), rsa), "payload is not a JSON object"),
        "payload-nan": (
            signed(head, seg(json.dumps({**CLAIMS, "exp": float("nan")}).encode()), rsa),
            "payload is not a JSON object",
        ),
        "payload-latin-1": (signed(head, seg(b'{"sub": "\xe9"}'), rsa), "payload is not a JSON"),
        "payload-empty": (f"{h}..{s}", "payload is empty"),
        "two-segments": (f"{h}.{p}", "three dot-separated segments"),
        "four-segments": (f"{h}.{p}.{s}.{s}", "three dot-separated segments"),
        "duplicated-payload-segment": (f"{h}.{p}.{p}.{s}", "three dot-separated segments"),
        "jwe-five-segments": (f"{h}.{p}.{p}.{p}.{s}", "JWE"),
        "oversized": (claims(pad="x" * 9000), "longer than 8192"),
        "header-oversized": (header(pad="x" * 1500), "header is too large"),
        "not-ascii": (b"Bearer " + good[:40].encode() + "\u00e9".encode() + b".x.y", "ASCII"),
    }


CASES = [
    "alg-none-unsigned", "alg-none", "alg-None", "alg-NONE", "alg-nOnE", "alg-none-spaced",
    "alg-none-with-kid", "alg-missing", "alg-unknown", "hs256-keyed-with-rsa-public-pem",
    "hs256-keyed-with-rsa-jwk", "es256-header-on-rsa-kid", "unknown-kid", "no-kid",
    "kid-path-traversal", "kid-sql-injection", "kid-nul-byte", "kid-not-a-string",
    "kid-too-long", "jku-header", "x5u-header", "jwk-header", "x5c-header", "crit-unknown",
    "crit-exp", "b64-false", "cty-nested-jwt", "typ-jwt-not-an-access-token", "typ-missing",
    "expired", "nbf-in-the-future", "iat-in-the-future", "wrong-issuer", "issuer-other-case",
    "wrong-audience", "audience-empty-list", "audience-numbers", "missing-exp", "missing-sub",
    "missing-iat", "exp-as-string", "exp-as-boolean", "exp-huge", "roles-not-a-list",
    "kind-api-key-claimed", "course-roles-not-an-object", "tampered-payload",
    "tampered-signature", "truncated-signature", "signed-by-another-key",
    "es256-signature-as-der", "es256-foreign-ec-key", "header-bad-base64", "header-padded",
    "signature-padded", "header-not-canonical", "header-not-json", "header-json-array",
    "header-duplicate-alg", "payload-duplicate-sub", "payload-not-json", "payload-nan",
    "payload-latin-1", "payload-empty", "two-segments", "four-segments",
    "duplicated-payload-segment", "jwe-five-segments", "oversized", "header-oversized",
    "not-ascii",
]  # fmt: skip


@pytest.fixture(scope="module")
def attacker() -> dict[str, SigningKey]:
    return {"RS256": SigningKey.generate("RS256"), "ES256": SigningKey.generate("ES256")}


@pytest.fixture(scope="module")
def hostile(
    keys: dict[str, SigningKey], attacker: dict[str, SigningKey]
) -> dict[str, tuple[Any, str]]:
    return corpus(keys, attacker)


def test_the_corpus_is_complete(hostile: dict[str, tuple[Any, str]]) -> None:
    assert sorted(hostile) == sorted(CASES)
    assert len(CASES) >= 25


def _authorization(token: str | bytes) -> str | bytes:
    return token if isinstance(token, bytes) else f"Bearer {token}"


@pytest.mark.parametrize("case", CASES)
async def test_hostile_token_is_a_401_problem(
    case: str,
    hostile: dict[str, tuple[Any, str]],
    make_protected: Callable[..., Service],
    jwks_url: str,
) -> None:
    token, reason = hostile[case]
    service = make_protected(auth_jwks_url=jwks_url)
    async with service_client(service) as client:
        response = await client.get(
            "/v1/courses/c1", headers={"authorization": _authorization(token)}
        )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://lms.example.org/problems/invalid-token"
    assert body["status"] == 401
    assert reason in body["detail"]
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(
        'Bearer realm="courses", error="invalid_token", error_description="'
    )
    assert "\n" not in challenge


async def test_a_valid_token_passes_the_same_way(
    keys: dict[str, SigningKey], make_protected: Callable[..., Service], jwks_url: str
) -> None:
    rsa, es = keys["RS256"], keys["ES256"]
    service = make_protected(auth_jwks_url=jwks_url)
    async with service_client(service) as client:
        for key in (rsa, es):
            token = signed({"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}, CLAIMS, key)
            response = await client.get(
                "/v1/courses/c1", headers={"authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text
            assert response.json() == {"subject": "mallory", "kind": "user", "roles": ["student"]}
    keyset = service.auth.keys
    assert keyset is not None
    assert keyset.loaded
    assert keyset.kids == {rsa.kid, es.kid}  # type: ignore[attr-defined]
