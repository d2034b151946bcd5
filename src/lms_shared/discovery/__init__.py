"""Service discovery: a registry protocol, backends by URL, load balancing.

* :class:`Discovery`: the facade a service holds: cached lookups kept
  fresh by the registry's watch, :meth:`~Discovery.resolve` /
  :meth:`~Discovery.begin` through a balancer per service, and
  :meth:`~Discovery.register_self` (a lifecycle component);
* :class:`Registry` and :func:`registry_from_url`: ``LMS_DISCOVERY_URL``
  picks the backend: the local SQLite file (unset), a static list,
  etcd (leases and watch) or Kubernetes DNS (A/AAAA and SRV records);
* :class:`Instance`, :class:`Registration`: what is registered and the
  keepalive of one registration;
* balancers: :class:`RoundRobin`, :class:`Random`,
  :class:`LeastOutstanding`, :class:`PowerOfTwoEWMA`,
  :class:`ConsistentHash`, and the wrappers :class:`ZonePreference`,
  :class:`VersionCanary` and :class:`OutlierEjection`;
* errors: :class:`NoInstances` and :class:`RegistryUnavailable` (503
  problems), :class:`RegistryReadOnly`, :class:`InvalidRegistryData`,
  :class:`DiscoveryConfigError`; ``PROBLEMS`` lists the problem codes.

Nothing here knows HTTP: the inter-service client builds on it.
"""

from lms_shared.discovery._balancing import (
    Balancer,
    ConsistentHash,
    LeastOutstanding,
    PowerOfTwoEWMA,
    Random,
    RoundRobin,
    VersionCanary,
    ZonePreference,
)
from lms_shared.discovery._discovery import (
    Call,
    Discovery,
    DiscoveryConfig,
    SelfRegistration,
    default_balancer,
)
from lms_shared.discovery._errors import (
    PROBLEMS,
    DiscoveryConfigError,
    DiscoveryError,
    InvalidRegistryData,
    NoInstances,
    RegistryReadOnly,
    RegistryUnavailable,
)
from lms_shared.discovery._instance import Instance
from lms_shared.discovery._local import LocalRegistry
from lms_shared.discovery._outliers import OutlierEjection
from lms_shared.discovery._registry import BACKENDS, Registration, Registry, registry_from_url
from lms_shared.discovery._static import StaticRegistry

__all__ = [
    "BACKENDS",
    "PROBLEMS",
    "Balancer",
    "Call",
    "ConsistentHash",
    "Discovery",
    "DiscoveryConfig",
    "DiscoveryConfigError",
    "DiscoveryError",
    "Instance",
    "InvalidRegistryData",
    "LeastOutstanding",
    "LocalRegistry",
    "NoInstances",
    "OutlierEjection",
    "PowerOfTwoEWMA",
    "Random",
    "Registration",
    "Registry",
    "RegistryReadOnly",
    "RegistryUnavailable",
    "RoundRobin",
    "SelfRegistration",
    "StaticRegistry",
    "VersionCanary",
    "ZonePreference",
    "default_balancer",
    "registry_from_url",
]
