"""Auth: token verification vs PyJWT and joserfc, and require() on a FastAPI route.

Two kinds of tables, all measured in interleaved rounds in one process.

*Verification* (one table per algorithm: RS256, ES256, EdDSA): tokens
verified per second by PyJWT's ``jwt.decode`` (key object prepared once,
same checks: signature, exp/nbf/iat, iss, aud, required claims), by
joserfc (for reference), and by our :class:`TokenVerifier` with the cache
off (every token fully verified) and on (the same token repeated). Targets:
cache off >= 1.0x PyJWT, cache on >= 5x PyJWT.

*Protected route* (in process, no sockets): µs per ``GET /ok`` on bare
FastAPI, with an empty dependency (FastAPI's own cost of any dependency),
with ``who: Principal = require("course:read")``, with ``AuthMiddleware``
and ``check(request.state.principal, ...)`` in the route (no dependency),
and with a hand-written PyJWT dependency; tokens cached. Target: auth adds
at most 0.25x of bare FastAPI's time (a speed ratio of at least 0.8x).
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

import jwt
from fastapi import Depends, FastAPI, Request
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey
from rich.console import Console

from bench._asgi import drive, http_scope, running
from bench._load import loop_factory
from bench._procs import cpu_split, pinned
from bench._report import Comparison, Target, parser
from lms_shared.auth import (
    Authenticator,
    Principal,
    SigningKey,
    StaticKeys,
    TokenSigner,
    TokenVerifier,
    VerifierConfig,
    check,
)
from lms_shared.clock import SystemClock
from lms_shared.http import AuthMiddleware, ProblemRenderer, require
from lms_shared.http.auth import install_auth

ISSUER = "https://identity.bench"
AUDIENCE = "courses"
ALGORITHMS = ("RS256", "ES256", "EdDSA")
JOSE_KEYS = {"RS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey}
ROUTE_NAMES = {
    "fastapi": "FastAPI",
    "empty": "FastAPI + an empty dependency",
    "lms": "FastAPI + require()",
    "middleware": "FastAPI + AuthMiddleware, check()",
    "pyjwt": "FastAPI + PyJWT dependency",
}


def _options(argv: list[str]) -> Any:
    cli = parser("auth", (__doc__ or "").splitlines()[0])
    cli.add_argument("--rounds", type=int, help="rounds per table (default 7, quick 3)")
    cli.add_argument("--tokens", type=int, help="verifications per variant per round")
    cli.add_argument("--requests", type=int, help="requests per app per round")
    cli.add_argument("--only", choices=("verify", "route"), help="run one kind of table")
    return cli.parse_args(argv)


def _signer(alg: str) -> TokenSigner:
    key = SigningKey.generate(alg)  # type: ignore[arg-type]
    return TokenSigner(ISSUER, [key], clock=SystemClock(), ttl=3600)


def _token(signer: TokenSigner, subject: str = "ada") -> str:
    who = Principal(subject=subject, roles=frozenset({"instructor"}), tenant="northwind")
    return signer.issue(who, audience=AUDIENCE)


def _verifier(signer: TokenSigner, cache_size: int) -> TokenVerifier:
    config = VerifierConfig(issuer=ISSUER, audiences=(AUDIENCE,), cache_size=cache_size)
    keys = StaticKeys(signer.verification_keys())
    return TokenVerifier(config, keys, clock=SystemClock())


def _pyjwt(signer: TokenSigner) -> Callable[[str], Any]:
    key, alg = signer.current.public_key, signer.current.alg
    options = {"require": ["exp", "iat", "sub"]}

    def decode(token: str) -> Any:
        return jwt.decode(
            token, key, algorithms=[alg], audience=AUDIENCE, issuer=ISSUER, options=options
        )

    return decode


def _joserfc(signer: TokenSigner) -> Callable[[str], Any]:
    alg = signer.current.alg
    key = JOSE_KEYS[alg].import_key(signer.current.public_key)  # type: ignore[attr-defined]
    registry = jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        sub={"essential": True},
    )

    def decode(token: str) -> Any:
        claims = jose_jwt.decode(token, key, algorithms=[alg]).claims
        registry.validate(claims)
        return claims

    return decode


def _rate(fn: Callable[[], Any], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        fn()
    return count / (time.perf_counter() - started)


async def _arate(fn: Callable[[str], Awaitable[Any]], tokens: list[str]) -> float:
    started = time.perf_counter()
    for token in tokens:
        await fn(token)
    return len(tokens) / (time.perf_counter() - started)


async def verification(alg: str, rounds: int, count: int) -> Comparison:
    """Tokens/s of each verifier for one algorithm."""
    signer = _signer(alg)
    token = _token(signer)
    tokens = [_token(signer, f"user-{i}") for i in range(count)]  # distinct: no cache help
    pyjwt, jose = _pyjwt(signer), _joserfc(signer)
    cold, warm = _verifier(signer, 0), _verifier(signer, 10_000)
    result = Comparison(
        title=f"{alg}: tokens verified per second",
        unit="tokens/s",
        higher_is_better=True,
        names={
            "pyjwt": "PyJWT jwt.decode",
            "joserfc": "joserfc jwt.decode",
            "cold": "lms-shared, cache off",
            "warm": "lms-shared, cache on",
        },
        baselines=("pyjwt",),
        targets=(Target("cold", "pyjwt", 1.0), Target("warm", "pyjwt", 5.0)),
    )
    assert (await cold.verify(token)).subject == pyjwt(token)["sub"] == jose(token)["sub"]
    for _ in range(rounds):
        result.add("pyjwt", _rate(lambda: pyjwt(token), count))
        result.add("joserfc", _rate(lambda: jose(token), count))
        result.add("cold", await _arate(cold.verify, tokens))
        result.add("warm", await _arate(warm.verify, [token] * (count * 10)))
    result.notes.append(
        f"{rounds} rounds x {count:,} tokens; cache on: one token repeated"
        f" ({warm.hits:,} hits, {warm.misses} miss)"
    )
    return result


async def _ok() -> dict[str, bool]:
    return {"ok": True}


def _route_apps(signer: TokenSigner) -> dict[str, Any]:
    bare = FastAPI()
    bare.get("/ok")(_ok)

    protected = FastAPI()
    install_auth(protected, Authenticator("courses", verifier=_verifier(signer, 10_000)))

    @protected.get("/ok")
    async def ok(who: Principal = require("course:read")) -> dict[str, bool]:
        return {"ok": True}

    decode = _pyjwt(signer)

    async def current(request: Request) -> dict[str, Any]:
        _, _, token = request.headers.get("authorization", "").partition(" ")
        return decode(token)  # type: ignore[no-any-return]

    hand = FastAPI()

    @hand.get("/ok")
    async def ok_pyjwt(claims: dict[str, Any] = Depends(current)) -> dict[str, bool]:
        return {"ok": True}

    async def nothing(request: Request) -> None:
        return None

    empty = FastAPI()

    @empty.get("/ok")
    async def ok_empty(_: None = Depends(nothing)) -> dict[str, bool]:
        return {"ok": True}

    checked = FastAPI()
    authenticator = Authenticator("courses", verifier=_verifier(signer, 10_000))
    renderer = ProblemRenderer("https://lms.example.org/problems/")
    checked.add_middleware(
        AuthMiddleware, authenticator=authenticator, renderer=renderer, required=("/",)
    )

    @checked.get("/ok")
    async def ok_checked(request: Request) -> dict[str, bool]:
        check(request.state.principal, "course:read")
        return {"ok": True}

    return {
        "fastapi": bare,
        "empty": empty,
        "lms": protected,
        "middleware": checked,
        "pyjwt": hand,
    }


async def protected_route(rounds: int, requests: int) -> Comparison:
    """µs per request of a route without and with authentication."""
    signer = _signer("RS256")
    apps = _route_apps(signer)
    scope = http_scope("/ok")
    scope["headers"] = [*scope["headers"], (b"authorization", f"Bearer {_token(signer)}".encode())]
    result = Comparison(
        title="Protected route, in process: time per request (RS256 token, cache on)",
        unit="µs/req",
        higher_is_better=False,
        names=ROUTE_NAMES,
        baselines=("fastapi",),
        targets=(Target("lms", "fastapi", 0.8), Target("middleware", "fastapi", 0.8)),
    )
    failed = 0
    for app in apps.values():
        async with running(app):
            failed += (await drive(app, scope, max(requests // 5, 1)))[1]
    for _ in range(rounds):
        for key, app in apps.items():
            async with running(app):
                seconds, bad = await drive(app, scope, requests)
            failed += bad
            result.add(key, seconds / requests * 1e6)

    def cost(key: str, base: str = "fastapi") -> str:
        # the same statistic as the targets: the median per-round speed ratio
        ratio = result.ratio(key, base)
        extra = result.median(base) * (1 / ratio - 1)
        return f"{extra:.1f} µs ({1 / ratio - 1:.2f}x)"

    result.notes += [
        f"{rounds} rounds x {requests:,} requests per app; added over bare FastAPI:"
        f" require() {cost('lms')}, AuthMiddleware {cost('middleware')},"
        f" an empty dependency {cost('empty')}",
        f"auth's own work in require() (over the empty dependency): {cost('lms', 'empty')};"
        " the rest is FastAPI's dependency injection",
        "0.80x speed is the target: 'adds at most 0.25x of bare FastAPI's time'",
    ]
    if failed:
        result.notes.append(f"[red]{failed} responses were not 200[/red]")
    return result


async def _all(opts: Any) -> list[Comparison]:
    rounds = opts.rounds or (3 if opts.quick else 7)
    count = opts.tokens or (300 if opts.quick else 2000)
    requests = opts.requests or (1000 if opts.quick else 5000)
    results = []
    if opts.only != "route":
        results += [await verification(alg, rounds, count) for alg in ALGORITHMS]
    if opts.only != "verify":
        results.append(await protected_route(rounds, requests))
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the auth benchmark; 1 under ``--check`` when a target is missed."""
    opts = _options(sys.argv[1:] if argv is None else argv)
    console = Console()
    versions = ", ".join(
        f"{p} {version(p)}" for p in ("pyjwt", "joserfc", "cryptography", "fastapi")
    )
    console.print(
        f"[bold]bench auth[/bold]: Python {platform.python_version()}, {versions}",
        highlight=False,
    )
    with (
        warnings.catch_warnings(),
        pinned(cpu_split()[0]),
        asyncio.Runner(loop_factory=loop_factory()) as runner,
    ):
        warnings.simplefilter("ignore")  # joserfc warns that "EdDSA" is deprecated (RFC 9864)
        results = runner.run(_all(opts))
    for result in results:
        result.render(console)
    met = all(r.met() for r in results)
    return 1 if opts.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
