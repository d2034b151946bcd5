"""The verifier without HTTP: algorithms, time checks, the cache, configuration."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from lms_shared import ConfigurationError
from lms_shared.auth import (
    InvalidToken,
    KeysUnavailable,
    Principal,
    SigningKey,
    StaticKeys,
    TokenSigner,
    TokenVerifier,
    VerifierConfig,
    hs256_key,
)
from lms_shared.testing import ManualClock

from .conftest import ISSUER

ADA = Principal(subject="ada", roles=frozenset({"instructor"}), tenant="northwind")


def verifier(
    signer: TokenSigner, clock: ManualClock, *, cache_size: int = 0, **config: Any
) -> TokenVerifier:
    settings = VerifierConfig(
        issuer=ISSUER, audiences=("courses",), cache_size=cache_size, **config
    )
    return TokenVerifier(settings, StaticKeys(signer.verification_keys()), clock=clock)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
async def test_every_algorithm_verifies(
    alg: str, keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    signer = TokenSigner(ISSUER, [keys[alg]], clock=clock)
    principal = await verifier(signer, clock).verify(signer.issue(ADA, audience="courses"))
    assert principal.subject == "ada"
    assert principal.roles == {"instructor"}
    assert principal.tenant == "northwind"
    assert principal.client_id == "ada"
    assert principal.expires_at is not None
    assert principal.expires_at.timestamp() == clock.now().timestamp() + 900


async def test_ed25519_is_the_rfc_9864_name_of_eddsa(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    key = keys["EdDSA"]
    signer = TokenSigner(ISSUER, [key], clock=clock)
    token = signer.issue(ADA, audience="courses")
    _, payload, _ = token.split(".")
    renamed = jwt.utils.base64url_encode(
        b'{"alg":"Ed25519","kid":"%s","typ":"at+jwt"}' % key.kid.encode()
    ).decode()
    signing_input = f"{renamed}.{payload}"
    sig = jwt.utils.base64url_encode(key.sign(signing_input.encode())).decode()
    assert (await verifier(signer, clock).verify(f"{signing_input}.{sig}")).subject == "ada"


async def test_tokens_made_by_pyjwt_are_accepted(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    key = keys["RS256"]
    now = int(clock.now().timestamp())
    claims = {"iss": ISSUER, "aud": ["lms", "courses"], "sub": "u1", "iat": now, "exp": now + 60}
    token = jwt.encode(
        claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": "at+jwt"}
    )
    signer = TokenSigner(ISSUER, [key], clock=clock)
    assert await verifier(signer, clock).decode(token) == claims


async def test_our_tokens_are_accepted_by_pyjwt(signer: TokenSigner, clock: ManualClock) -> None:
    token = signer.issue(ADA, audience="courses")
    claims = jwt.decode(
        token,
        signer.current.public_key,
        algorithms=["RS256"],
        audience="courses",
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["sub"] == "ada"
    assert jwt.get_unverified_header(token) == {
        "alg": "RS256",
        "kid": signer.current.kid,
        "typ": "at+jwt",
    }


async def test_expiry_honours_the_leeway_to_the_second(
    signer: TokenSigner, clock: ManualClock
) -> None:
    check = verifier(signer, clock, leeway=30)
    token = signer.issue(ADA, audience="courses", ttl=60)
    await clock.advance(60 + 30 - 1)
    assert (await check.verify(token)).subject == "ada"
    await clock.advance(1)  # now == exp + leeway: RFC 7519 rejects on or after exp
    with pytest.raises(InvalidToken, match="expired"):
        await check.decode(token)


async def test_exp_equal_to_now_is_refused_with_zero_leeway(
    signer: TokenSigner, clock: ManualClock
) -> None:
    check = verifier(signer, clock, leeway=0)
    token = signer.issue(ADA, audience="courses", ttl=60)
    await clock.advance(59)
    assert (await check.decode(token))["sub"] == "ada"
    await clock.advance(1)
    with pytest.raises(InvalidToken, match="expired"):
        await check.decode(token)


async def test_a_token_from_a_clock_ahead_within_the_leeway_is_accepted(
    signer: TokenSigner, clock: ManualClock
) -> None:
    ahead = ManualClock(start=clock.now())
    await ahead.advance(25)
    early = TokenSigner(ISSUER, [signer.current], clock=ahead)
    token = early.issue(ADA, audience="courses")
    assert (await verifier(signer, clock, leeway=30).verify(token)).subject == "ada"
    with pytest.raises(InvalidToken, match="not valid yet"):
        await verifier(signer, clock, leeway=10).verify(token)


async def test_accepted_types_and_audience_lists(signer: TokenSigner, clock: ManualClock) -> None:
    check = verifier(signer, clock)
    for typ in ("at+jwt", "AT+JWT", "application/at+jwt"):
        token = signer.sign(
            {"iss": ISSUER, "aud": ["x", "courses"], "sub": "s", "iat": 0, "exp": 2**33}, typ=typ
        )
        assert (await check.verify(token)).subject == "s"
    untyped = verifier(signer, clock, token_type=None)
    assert (
        await untyped.verify(
            signer.sign(
                {"iss": ISSUER, "aud": "courses", "sub": "s", "iat": 0, "exp": 2**33}, typ="JWT"
            )
        )
    ).subject == "s"


async def test_the_cache_serves_repeats_until_expiry(
    signer: TokenSigner, clock: ManualClock
) -> None:
    check = verifier(signer, clock, cache_size=10)
    token = signer.issue(ADA, audience="courses", ttl=120)
    first = await check.verify(token)
    assert await check.verify(token) is first
    assert (check.hits, check.misses, check.cached_tokens) == (1, 1, 1)
    await clock.advance(120 + 30 + 1)
    with pytest.raises(InvalidToken, match="expired"):
        await check.verify(token)
    assert check.cached_tokens == 0


async def test_the_cache_is_bounded(signer: TokenSigner, clock: ManualClock) -> None:
    check = verifier(signer, clock, cache_size=2)
    tokens = [signer.issue(Principal(subject=f"u{i}"), audience="courses") for i in range(5)]
    for token in tokens:
        await check.verify(token)
    assert check.cached_tokens == 2
    assert check.cached(tokens[-1]) is not None
    assert check.cached(tokens[0]) is None


async def test_cache_off_verifies_every_time(signer: TokenSigner, clock: ManualClock) -> None:
    check = verifier(signer, clock, cache_size=0)
    token = signer.issue(ADA, audience="courses")
    await check.verify(token)
    await check.verify(token)
    assert (check.hits, check.misses, check.cached_tokens) == (0, 2, 0)


async def test_forgetting_a_key_drops_its_cached_tokens(
    keys: dict[str, SigningKey], clock: ManualClock
) -> None:
    signer = TokenSigner(ISSUER, [keys["ES256"], keys["RS256"]], clock=clock)
    check = verifier(signer, clock, cache_size=10)
    await check.verify(signer.issue(ADA, audience="courses"))
    check.forget({keys["RS256"].kid})
    assert check.cached_tokens == 1
    check.forget({keys["ES256"].kid})
    assert check.cached_tokens == 0


async def test_hs256_only_when_configured_alone(clock: ManualClock) -> None:
    secret = b"s" * 32
    config = VerifierConfig(issuer=ISSUER, audiences=("courses",), algorithms=frozenset({"HS256"}))
    check = TokenVerifier(config, StaticKeys([hs256_key(secret)]), clock=clock)
    now = int(clock.now().timestamp())
    claims = {"iss": ISSUER, "aud": "courses", "sub": "svc", "iat": now, "exp": now + 60}
    token = jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "at+jwt"})
    assert (await check.verify(token)).subject == "svc"
    forged = jwt.encode(claims, b"t" * 32, algorithm="HS256", headers={"typ": "at+jwt"})
    with pytest.raises(InvalidToken, match="signature"):
        await check.verify(forged)


def test_hs256_is_never_beside_asymmetric_algorithms(
    signer: TokenSigner, clock: ManualClock
) -> None:
    with pytest.raises(ConfigurationError, match="beside asymmetric"):
        VerifierConfig(issuer=ISSUER, audiences=("c",), algorithms=frozenset({"HS256", "RS256"}))
    hs_only = VerifierConfig(issuer=ISSUER, audiences=("c",), algorithms=frozenset({"HS256"}))
    with pytest.raises(ConfigurationError, match="one configured secret"):
        TokenVerifier(hs_only, StaticKeys(signer.verification_keys()), clock=clock)
    with pytest.raises(ValueError, match="32 bytes"):
        hs256_key(b"short")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"issuer": ""}, "issuer"),
        ({"audiences": ()}, "audience"),
        ({"algorithms": frozenset({"RS384"})}, "unsupported"),
        ({"leeway": 301}, "leeway"),
        ({"max_token_bytes": 10}, "maximum token size"),
        ({"cache_size": -1}, "cache size"),
    ],
)
def test_configuration_is_validated(config: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"issuer": ISSUER, "audiences": ("courses",), **config}
    with pytest.raises(ConfigurationError, match=message):
        VerifierConfig(**values)


def test_exp_is_always_required() -> None:
    config = VerifierConfig(issuer=ISSUER, audiences=("c",), required_claims=frozenset())
    assert config.required_claims == {"exp"}


async def test_a_single_static_key_matches_a_token_without_kid(clock: ManualClock) -> None:
    secret = b"k" * 40
    config = VerifierConfig(issuer=ISSUER, audiences=("c",), algorithms=frozenset({"HS256"}))
    check = TokenVerifier(config, StaticKeys([hs256_key(secret)]), clock=clock)
    now = int(clock.now().timestamp())
    token = jwt.encode(
        {"iss": ISSUER, "aud": "c", "sub": "x", "iat": now, "exp": now + 5},
        secret,
        algorithm="HS256",
        headers={"typ": "at+jwt"},
    )
    assert (await check.verify(token)).subject == "x"


class _EmptyKeys:
    loaded = False

    def find(self, kid: str | None) -> None:
        return None

    async def refresh_for(self, kid: str | None) -> None:
        return None


async def test_no_keys_loaded_is_a_503_not_a_401(signer: TokenSigner, clock: ManualClock) -> None:
    config = VerifierConfig(issuer=ISSUER, audiences=("courses",))
    check = TokenVerifier(config, _EmptyKeys(), clock=clock)
    with pytest.raises(KeysUnavailable) as caught:
        await check.verify(signer.issue(ADA, audience="courses"))
    assert caught.value.status == 503
    assert caught.value.headers == {"retry-after": "5"}


def test_static_keys_refuse_duplicate_kids(signer: TokenSigner) -> None:
    key = signer.verification_keys()[0]
    with pytest.raises(ValueError, match="share a kid"):
        StaticKeys([key, key])
    with pytest.raises(ValueError, match="at least one"):
        StaticKeys([])
