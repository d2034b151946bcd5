"""The inter-service HTTP client: ``service.client("identity")``.

* :class:`ServiceClient`: calls to one service through discovery and its
  balancer, with a deadline handed on from the request being served,
  retries where they are safe (idempotent, or an idempotency key; one
  retrying hop; a budget; ``Retry-After``), a breaker per service and per
  instance, optional hedging and a bulkhead, the service's credentials,
  and typed JSON helpers (``get_json(path, model=User)``, ``post_json``...);
* :class:`Clients`: the service's clients (``service.clients``, a
  lifecycle component), what they share, and the ``propagators`` hook;
* :class:`ClientConfig`: the knobs per target, from ``LMS_CLIENT_*`` and code;
  under a service mesh (``LMS_CLIENT_MESH``) the sidecar balances and retries;
* errors: answers become typed errors (:class:`UpstreamNotFound` is a
  ``NotFound``, :class:`UpstreamUnavailable` a ``ServiceUnavailable``...),
  their problem bodies read bounded; ``PROBLEMS`` lists the codes.

The server side of deadlines is :mod:`lms_shared.http.deadline`.
"""

from lms_shared.client._client import Propagator, ServiceClient
from lms_shared.client._clients import Clients
from lms_shared.client._config import DEFAULT_BREAKER, ClientConfig, Mesh
from lms_shared.client._errors import (
    BAD_GATEWAY,
    PROBLEMS,
    InvalidResponse,
    ServiceCallError,
    ServiceUnreachable,
    UpstreamBadRequest,
    UpstreamConflict,
    UpstreamNotFound,
    UpstreamPreconditionFailed,
    UpstreamUnavailable,
)

__all__ = [
    "BAD_GATEWAY",
    "DEFAULT_BREAKER",
    "PROBLEMS",
    "ClientConfig",
    "Clients",
    "InvalidResponse",
    "Mesh",
    "Propagator",
    "ServiceCallError",
    "ServiceClient",
    "ServiceUnreachable",
    "UpstreamBadRequest",
    "UpstreamConflict",
    "UpstreamNotFound",
    "UpstreamPreconditionFailed",
    "UpstreamUnavailable",
]
