"""Discovery's errors and their problem codes (a leaf of ``lms_shared.discovery``).

Driver errors (httpx, dnspython, sqlite3) never leave a backend as they
are: each backend translates them (``raise ... from exc``) into this part
of the exception tree::

    LmsError
    ├── ConfigurationError
    │   └── SettingsError
    │       └── DiscoveryConfigError   LMS_DISCOVERY_URL (or an option of it) is invalid
    ├── DiscoveryError                 root of the non-HTTP discovery errors
    │   ├── RegistryReadOnly           a write on a read-only backend (static, Kubernetes DNS)
    │   └── InvalidRegistryData        a record or answer that does not decode (size, depth, fields)
    └── ProblemError
        └── ServiceUnavailable
            ├── NoInstances            503 no-instances: no healthy instance of the service
            └── RegistryUnavailable    503 registry-unavailable: the registry does not answer

Every 503 carries ``Retry-After``.
"""

from __future__ import annotations

from lms_shared.errors import ErrorCode, LmsError, ServiceUnavailable, SettingsError

__all__ = [
    "NO_INSTANCES",
    "PROBLEMS",
    "REGISTRY_UNAVAILABLE",
    "DiscoveryConfigError",
    "DiscoveryError",
    "InvalidRegistryData",
    "NoInstances",
    "RegistryReadOnly",
    "RegistryUnavailable",
]

NO_INSTANCES = ErrorCode("no-instances", 503, "No instance of the service is available")
REGISTRY_UNAVAILABLE = ErrorCode("registry-unavailable", 503, "Service registry unavailable")

PROBLEMS: tuple[ErrorCode, ...] = (NO_INSTANCES, REGISTRY_UNAVAILABLE)
"""The problem codes of this capability."""

VARIABLE = "LMS_DISCOVERY_URL"


class DiscoveryConfigError(SettingsError):
    """``LMS_DISCOVERY_URL`` (or one of its options) is invalid; the message names it.

    Args:
        message: what is wrong and what would be right.
        variable: the setting at fault (``LMS_DISCOVERY_URL`` unless another).
    """

    def __init__(self, message: str, *, variable: str = VARIABLE) -> None:
        super().__init__([(variable, message)])


class DiscoveryError(LmsError):
    """Root of the discovery errors that have no HTTP meaning."""


class RegistryReadOnly(DiscoveryError):
    """A write (register, deregister, health) on a backend that only reads.

    Static lists are edited in the settings and Kubernetes owns the
    registration of pods; :attr:`Registry.read_only` tells before trying.

    Attributes:
        backend: the backend's name (``static``, ``k8s``).
    """

    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        super().__init__(f"the {backend} registry is read-only: {reason}")


class InvalidRegistryData(DiscoveryError):
    """A record or answer from the registry that does not decode.

    Raised for records that are too large or too deeply nested, are not
    JSON, or lack required fields: what another process wrote is untrusted.
    """


class NoInstances(ServiceUnavailable):
    """503: no healthy instance of a service is known.

    Attributes:
        service: the service that was looked up.
    """

    code = NO_INSTANCES

    def __init__(self, service: str, *, reason: str = "", retry_after: int = 1) -> None:
        self.service = service
        detail = f"no healthy instance of service {service!r}" + (f" ({reason})" if reason else "")
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, service=service)


class RegistryUnavailable(ServiceUnavailable):
    """503: the registry cannot be reached, or answered with an error.

    Attributes:
        backend: the backend's name (``etcd``, ``k8s``, ``local``).
        where: the endpoints or file tried (never credentials).
    """

    code = REGISTRY_UNAVAILABLE

    def __init__(self, detail: str, *, backend: str, where: str, retry_after: int = 1) -> None:
        self.backend = backend
        self.where = where
        super().__init__(
            f"{detail} ({backend} at {where})", headers={"Retry-After": str(retry_after)}
        )
