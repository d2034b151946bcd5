"""``service.auth``: a service's authentication, built once from its settings.

:class:`AuthConfig` is the frozen slice of :class:`~lms_shared.Settings`
auth needs; :class:`Auth` is the component the service starts first:

* ``LMS_AUTH_JWKS_URL`` (with ``LMS_AUTH_ISSUER``): tokens are verified
  against identity's keys, fetched at start-up and kept fresh;
  ``LMS_AUTH_HS256_SECRET`` instead: one shared secret, nothing else;
* ``LMS_AUTH_SIGNING_KEYS`` (identity): the service signs tokens, verifies
  its own, and mints its own service tokens;
* ``LMS_AUTH_TOKEN_URL`` + ``LMS_AUTH_CLIENT_SECRET``: outgoing calls get
  service tokens (:meth:`Auth.outgoing`);
* API keys are accepted once a store is given (:meth:`Auth.use_api_keys`);
* none of the key settings, in development: tokens of ``lms-shared token
  mint`` are trusted, from the JWKS in the state folder (:mod:`._devkeys`).

Everything that fetches or connects happens in :meth:`Auth.start`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from lms_shared.auth._apikeys import ApiKeys, ApiKeyStore
from lms_shared.auth._authenticator import NOT_CONFIGURED, Authenticator
from lms_shared.auth._devkeys import DEV_AUDIENCE, DEV_ISSUER, DevKeys, trusts_dev_keys
from lms_shared.auth._jwks import JwksKeys, KeySource, StaticKeys
from lms_shared.auth._jwt import TokenVerifier, VerifierConfig
from lms_shared.auth._keys import VerificationKey, hs256_key
from lms_shared.auth._principal import Principal
from lms_shared.auth._rbac import Policy
from lms_shared.auth._s2s import ClientCredentials, ServiceTokenAuth, SignerTokens, TokenSource
from lms_shared.auth._signer import SigningKey, TokenSigner
from lms_shared.clock import Clock
from lms_shared.errors import ConfigurationError, NotReady, SettingsError
from lms_shared.observability import get_logger
from lms_shared.settings import Settings

__all__ = ["Auth", "AuthConfig"]


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """The auth settings of one service (see :class:`~lms_shared.Settings`)."""

    service: str
    issuer: str | None = None
    audiences: tuple[str, ...] = ()
    algorithms: frozenset[str] = frozenset({"RS256", "PS256", "ES256", "EdDSA", "Ed25519"})
    jwks_url: str | None = None
    jwks_refresh: float = 300.0
    hs256_secret: SecretStr | None = None
    leeway: float = 30.0
    max_token_bytes: int = 8192
    token_cache_size: int = 10_000
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """``LMS_AUTH_ROLES``: replaces the grants of each role it names."""
    grants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Added to the roles' grants by the service's code (``create_service(roles=...)``)."""
    access_token_ttl: float = 900.0
    service_token_ttl: float = 300.0
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    clients: Mapping[str, SecretStr] = field(default_factory=dict)
    signing_keys: tuple[SecretStr, ...] = ()
    api_key_prefix: str = "lms"
    env: str = "development"
    dev_keys_dir: Path | None = None
    """The state folder whose development JWKS is trusted (set by :meth:`from_settings`)."""

    @classmethod
    def from_settings(cls, service: str, settings: Settings) -> AuthConfig:
        """The auth slice of ``settings`` for ``service``.

        In development with no key source or issuer configured, the
        development JWKS of ``LMS_STATE_DIR`` is trusted, for its audience too.
        """
        dev = trusts_dev_keys(settings)
        audiences = tuple(settings.auth_audience) or (service,)
        return cls(
            service=service,
            issuer=settings.auth_issuer,
            audiences=(*audiences, DEV_AUDIENCE) if dev else audiences,
            algorithms=frozenset(settings.auth_algorithms),
            jwks_url=settings.auth_jwks_url,
            jwks_refresh=settings.auth_jwks_refresh,
            hs256_secret=settings.auth_hs256_secret,
            leeway=settings.auth_leeway,
            max_token_bytes=settings.auth_max_token_bytes,
            token_cache_size=settings.auth_token_cache_size,
            roles={role: tuple(grants) for role, grants in settings.auth_roles.items()},
            access_token_ttl=settings.auth_access_token_ttl,
            service_token_ttl=settings.auth_service_token_ttl,
            token_url=settings.auth_token_url,
            client_id=settings.auth_client_id,
            client_secret=settings.auth_client_secret,
            clients=dict(settings.auth_clients),
            signing_keys=tuple(settings.auth_signing_keys),
            api_key_prefix=settings.auth_api_key_prefix,
            env=settings.env,
            dev_keys_dir=settings.state_dir if dev else None,
        )

    def verifier_config(self, *, issuer: str | None = None) -> VerifierConfig:
        """The verifier's checks: HS256 alone with a shared secret, never otherwise.

        Raises:
            ConfigurationError: HS256 is listed without a shared secret.
        """
        if self.hs256_secret is not None:
            algorithms = frozenset({"HS256"})
        elif "HS256" in self.algorithms:
            raise ConfigurationError("HS256 is accepted only with LMS_AUTH_HS256_SECRET")
        else:
            algorithms = self.algorithms
        return VerifierConfig(
            issuer=issuer or self.issuer or "",
            audiences=self.audiences,
            algorithms=algorithms,
            leeway=self.leeway,
            max_token_bytes=self.max_token_bytes,
            cache_size=self.token_cache_size,
        )


class Auth:
    """A service's authentication: verifier, API keys, signer, service tokens.

    Args:
        config: the auth settings.
        clock: the service's clock.
        transport: an httpx transport for JWKS and token requests (tests).

    Raises:
        ConfigurationError: the settings contradict each other (HS256 beside
            a JWKS URL, a JWKS URL without an issuer, ...).
    """

    def __init__(
        self, config: AuthConfig, *, clock: Clock, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.name = "auth"
        self.config = config
        self.clock = clock
        self.log = get_logger("lms.auth", service=config.service)
        try:
            Policy(grants=config.grants)
        except ValueError as exc:
            raise ValueError(f"roles given to the service: {exc}") from None
        try:
            self.policy = Policy(grants=config.grants, overrides=config.roles)
        except ValueError as exc:
            raise SettingsError([("LMS_AUTH_ROLES", str(exc))]) from None
        self.keys: KeySource | None = None
        self.verifier: TokenVerifier | None = None
        self.signer: TokenSigner | None = None
        self.tokens: TokenSource | None = None
        self.api_keys: ApiKeys | None = None
        self.authenticator = Authenticator(config.service)
        self._started: list[Any] = []
        if config.hs256_secret is not None and config.jwks_url is not None:
            raise ConfigurationError("LMS_AUTH_HS256_SECRET cannot be used with LMS_AUTH_JWKS_URL")
        if config.jwks_url is not None:
            self.use_keys(
                JwksKeys(
                    config.jwks_url,
                    algorithms=config.algorithms - {"HS256"},
                    clock=clock,
                    refresh_interval=config.jwks_refresh,
                    transport=transport,
                )
            )
        elif config.hs256_secret is not None:
            secret = config.hs256_secret.get_secret_value().encode()
            try:
                self.use_keys(StaticKeys([hs256_key(secret)]))
            except ValueError as exc:
                raise SettingsError([("LMS_AUTH_HS256_SECRET", str(exc))]) from None
        elif config.dev_keys_dir is not None and not config.signing_keys:
            # refuses LMS_ENV=production (DevAuthRefused)
            dev = DevKeys(
                config.dev_keys_dir, env=config.env, algorithms=config.algorithms - {"HS256"}
            )
            self.use_keys(dev, issuer=DEV_ISSUER)
        if config.signing_keys:
            try:
                keys = [SigningKey.from_pem(k.get_secret_value()) for k in config.signing_keys]
            except ValueError as exc:
                raise SettingsError([("LMS_AUTH_SIGNING_KEYS", str(exc))]) from None
            self.use_signer(
                TokenSigner(self._issuer(), keys, clock=clock, ttl=config.access_token_ttl)
            )
        if config.token_url is not None and config.client_secret is not None:
            self.tokens = ClientCredentials(
                config.token_url,
                config.client_id or config.service,
                config.client_secret,
                clock=clock,
                transport=transport,
            )

    def _issuer(self) -> str:
        if not self.config.issuer:
            raise SettingsError([("LMS_AUTH_ISSUER", "needed to verify or sign tokens")])
        return self.config.issuer

    @property
    def fetches_keys(self) -> bool:
        """Whether keys come from a JWKS URL (then readiness waits for them)."""
        return isinstance(self.keys, JwksKeys)

    def use_keys(self, keys: KeySource, *, issuer: str | None = None) -> TokenVerifier:
        """Verify bearer tokens with ``keys`` (replacing any key source).

        Args:
            keys: the key source.
            issuer: the trusted issuer; ``LMS_AUTH_ISSUER`` by default.
        """
        if issuer is None:
            issuer = self._issuer()
        config = self.config.verifier_config(issuer=issuer)
        self.keys = keys
        self.verifier = TokenVerifier(config, keys, clock=self.clock, policy=self.policy)
        self.authenticator.verifier = self.verifier
        return self.verifier

    def use_signer(self, signer: TokenSigner) -> None:
        """Sign tokens with ``signer``, trust its keys, and mint service tokens with it."""
        self.signer = signer
        self.use_keys(_SignerKeys(signer), issuer=signer.issuer)
        service = Principal(
            subject=self.config.service,
            kind="service",
            roles=frozenset({"service"}),
            client_id=self.config.service,
        )
        self.tokens = SignerTokens(signer, service, ttl=self.config.service_token_ttl)

    def use_api_keys(self, store: ApiKeyStore) -> ApiKeys:
        """Accept API keys kept in ``store`` (and manage them through the result)."""
        self.api_keys = ApiKeys(
            store, clock=self.clock, prefix=self.config.api_key_prefix, policy=self.policy
        )
        self.authenticator.api_keys = self.api_keys
        return self.api_keys

    def use_tokens(self, source: TokenSource) -> None:
        """Get outgoing service tokens from ``source`` (tests, custom grants)."""
        self.tokens = source

    def outgoing(self, audience: str) -> httpx.Auth | None:
        """The ``httpx.Auth`` for calls to service ``audience``.

        ``None`` when this service has no credentials (calls then carry no
        token and callees that require one answer 401).
        """
        if self.tokens is None:
            return None
        return ServiceTokenAuth(self.tokens, audience)

    async def start(self) -> None:
        """Fetch the keys and open the token client."""
        for part in (self.keys, self.tokens):
            start = getattr(part, "start", None)
            if start is not None:
                await start()
                self._started.append(part)

    async def stop(self) -> None:
        """Stop refreshing keys and close the HTTP clients."""
        while self._started:
            await self._started.pop().stop()

    @property
    def configured(self) -> bool:
        """Whether anything can authenticate a request (a token verifier or API keys)."""
        return self.verifier is not None or self.api_keys is not None

    async def ping(self) -> str:
        """Readiness: verification keys are loaded (when tokens are accepted).

        Raises:
            NotReady: nothing can authenticate a request
                (:data:`NOT_CONFIGURED`, naming the settings to set).
        """
        ping = getattr(self.keys, "ping", None)
        if ping is not None:
            return str(await ping())
        if self.verifier is None:
            if self.api_keys is None:
                raise NotReady(NOT_CONFIGURED)
            return "API keys only (no bearer tokens)"
        return "static keys"


class _SignerKeys:
    """The signer's published keys, current as it rotates."""

    def __init__(self, signer: TokenSigner) -> None:
        self.signer = signer
        self._version: tuple[str, ...] = ()
        self._static: StaticKeys | None = None

    def _keys(self) -> StaticKeys:
        kids = tuple(k.kid for k in self.signer.keys)
        if self._static is None or kids != self._version:
            self._static = StaticKeys(self.signer.verification_keys())
            self._version = kids
        return self._static

    @property
    def loaded(self) -> bool:
        return True

    def find(self, kid: str | None) -> VerificationKey | None:
        return self._keys().find(kid) if kid is not None else None

    async def refresh_for(self, kid: str | None) -> VerificationKey | None:
        return self.find(kid)
