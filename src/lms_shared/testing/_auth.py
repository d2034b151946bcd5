"""Tokens for any principal in tests, without a running identity service.

:class:`FakeIdentity` holds a test keypair and a real :class:`TokenSigner`,
so the tokens it issues go through the very verifier production uses::

    identity = FakeIdentity()
    identity.install(service)              # the service trusts its keys
    headers = identity.headers("ada", roles=["instructor"])
    response = await client.post("/v1/courses", json=..., headers=headers)

``install`` also gives the service a token source, so its outgoing calls
(``service.auth.outgoing("enrollments")``) carry service tokens the other
installed services accept. The pytest plugin offers one as the
``fake_identity`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lms_shared.auth import (
    Principal,
    PrincipalKind,
    SignerTokens,
    SigningAlgorithm,
    SigningKey,
    StaticKeys,
    TokenSigner,
    TokenVerifier,
    VerifierConfig,
)
from lms_shared.clock import Clock, SystemClock

if TYPE_CHECKING:
    from lms_shared.service import Service

__all__ = ["FakeIdentity"]


class FakeIdentity:
    """An in-process identity service: a keypair, a signer, tokens on demand.

    Args:
        issuer: the ``iss`` of its tokens.
        alg: the signing algorithm (ES256: key generation is instant).
        clock: the clock of ``iat``/``exp``. Left out, it is the system
            clock until :meth:`install`, which adopts the service's clock
            (a :class:`~lms_shared.testing.ManualClock` the service was built
            with then also dates the tokens, so expiry tests agree).
        ttl: default token lifetime in seconds.
    """

    def __init__(
        self,
        *,
        issuer: str = "https://identity.test",
        alg: SigningAlgorithm = "ES256",
        clock: Clock | None = None,
        ttl: float = 900.0,
    ) -> None:
        self.issuer = issuer
        self.clock = clock or SystemClock()
        self._follows_service = clock is None
        self.signer = TokenSigner(issuer, [SigningKey.generate(alg)], clock=self.clock, ttl=ttl)
        self.audiences: list[str] = []

    def principal(
        self,
        subject: str = "user-1",
        *,
        kind: PrincipalKind = "user",
        roles: Iterable[str] = ("student",),
        course_roles: Mapping[str, Iterable[str]] | None = None,
        tenant: str | None = None,
        scopes: Iterable[str] | None = None,
        name: str | None = None,
    ) -> Principal:
        """A principal with the LMS default policy (for plain-code tests)."""
        return Principal(
            subject=subject,
            kind=kind,
            tenant=tenant,
            roles=frozenset(roles),
            course_roles={c: frozenset(r) for c, r in (course_roles or {}).items()},
            scopes=None if scopes is None else frozenset(scopes),
            name=name,
        )

    def token(
        self,
        subject: str = "user-1",
        *,
        audience: str | Sequence[str] | None = None,
        ttl: float | None = None,
        claims: Mapping[str, Any] | None = None,
        **principal: Any,
    ) -> str:
        """A signed access token.

        Args:
            subject: the ``sub``.
            audience: its ``aud``; by default every installed service (and ``test``).
            ttl: lifetime in seconds.
            claims: extra claims.
            **principal: ``kind``, ``roles``, ``course_roles``, ``tenant``,
                ``scopes``, ``name``, as :meth:`principal` takes them.
        """
        who = self.principal(subject, **principal)
        aud = audience if audience is not None else [*self.audiences, "test"]
        return self.signer.issue(who, audience=aud, ttl=ttl, extra=claims)

    def headers(self, subject: str = "user-1", **kwargs: Any) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` for :meth:`token`'s arguments."""
        return {"Authorization": f"Bearer {self.token(subject, **kwargs)}"}

    def keys(self) -> StaticKeys:
        """The verification keys of its tokens."""
        return StaticKeys(self.signer.verification_keys())

    def jwks(self) -> dict[str, Any]:
        """Its JWKS document."""
        return self.signer.jwks()

    def verifier(self, audience: str = "test", *, cache_size: int = 0) -> TokenVerifier:
        """A verifier that accepts its tokens for ``audience``."""
        config = VerifierConfig(issuer=self.issuer, audiences=(audience,), cache_size=cache_size)
        return TokenVerifier(config, self.keys(), clock=self.clock)

    def install(self, service: Service) -> None:
        """Make ``service`` trust these tokens and mint its outgoing service tokens here.

        Without a clock of its own, it takes the service's from now on.
        """
        if self._follows_service:
            self.clock = self.signer.clock = service.clock
        service.auth.use_keys(self.keys(), issuer=self.issuer)
        me = Principal(
            subject=service.name,
            kind="service",
            roles=frozenset({"service"}),
            client_id=service.name,
        )
        service.auth.use_tokens(SignerTokens(self.signer, me))
        self.audiences.extend(a for a in service.auth.config.audiences if a not in self.audiences)
