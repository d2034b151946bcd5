"""Who a request counts against: principal, API key or client address.

A key function takes the ASGI scope and returns a client key, or ``None``
to let the next one try; :func:`key_chain` builds the order from
``LMS_RATELIMIT_BY`` (default ``["principal", "ip"]``):

* ``principal``: the authenticated principal in
  ``scope["state"]["principal"]`` (anything with a ``subject``), which the
  auth dependency stores; so it is found by :func:`rate_limited` declared
  after ``require(...)``, and by the middleware only when an outer auth
  middleware set it;
* ``api_key``: a digest of the ``X-API-Key`` / ``Authorization: ApiKey``
  header. It is *not verified* here: an attacker can mint new keys for
  fresh quotas, so put ``ip`` after it only where keys are verified
  before the limiter, or key on the verified principal instead;
* ``ip``: the client address, ``scope["client"]``: the peer, or the client
  a trusted proxy forwarded, as :class:`~lms_shared.http.proxies.ForwardedMiddleware`
  set it (no key function reads forwarding headers itself); IPv6 clients
  are grouped by their /64 (one host usually owns the whole /64 and could
  otherwise rotate through it).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable, Sequence

from lms_shared.caching import BoundedCache
from lms_shared.types import Scope

__all__ = ["KeyFunc", "api_key_key", "client_ip_key", "key_chain", "principal_key"]

KeyFunc = Callable[[Scope], str | None]
_V6_CACHE_MAX = 4096


def principal_key(scope: Scope) -> str | None:
    """``principal:<kind>:<subject>`` from ``scope["state"]["principal"]``, if any."""
    state = scope.get("state")
    principal = state.get("principal") if state else None
    if principal is None:
        return None
    if isinstance(principal, str):
        return f"principal:{principal}" if principal else None
    subject = getattr(principal, "subject", None)
    if not subject:
        return None
    kind = getattr(principal, "kind", None)
    return f"principal:{kind}:{subject}" if kind else f"principal:{subject}"


def api_key_key(scope: Scope) -> str | None:
    """``apikey:<sha256 prefix>`` of the request's API key (never the key itself)."""
    for name, value in scope["headers"]:
        if name == b"x-api-key" and value:
            secret = value
        elif name == b"authorization" and value[:7].lower() == b"apikey ":
            secret = value[7:].strip()
        else:
            continue
        return "apikey:" + hashlib.sha256(secret).hexdigest()[:32]
    return None


def client_ip_key() -> KeyFunc:
    """A key function for the client address (``ip:203.0.113.9``, ``ip:2001:db8::/64``).

    The address is ``scope["client"]``: behind trusted proxies, the one
    :class:`~lms_shared.http.proxies.ForwardedMiddleware` put there.
    """
    v6_cache: BoundedCache[str, str] = BoundedCache(_V6_CACHE_MAX)

    def key(scope: Scope) -> str | None:
        client = scope.get("client")
        if not client:
            return None
        address = str(client[0])
        if ":" not in address:
            return "ip:" + address
        grouped = v6_cache.get(address)
        if grouped is None:
            try:
                ip = ipaddress.IPv6Address(address.split("%", 1)[0])
            except ValueError:
                return "ip:" + address
            mapped = ip.ipv4_mapped
            grouped = str(mapped) if mapped else str(ipaddress.IPv6Network((ip, 64), strict=False))
            v6_cache.set(address, grouped)
        return "ip:" + grouped

    return key


def key_chain(order: Sequence[str] | Iterable[KeyFunc]) -> KeyFunc:
    """The first key any of ``order`` finds; ``ip:unknown`` when none does.

    Args:
        order: names (``principal``, ``api_key``, ``ip``) or key functions.

    Raises:
        ValueError: an unknown name.
    """
    named: dict[str, KeyFunc] = {
        "principal": principal_key,
        "api_key": api_key_key,
        "ip": client_ip_key(),
    }
    funcs: list[KeyFunc] = []
    for item in order:
        if isinstance(item, str):
            if item not in named:
                raise ValueError(f"unknown rate-limit key {item!r}; use {', '.join(named)}")
            funcs.append(named[item])
        else:
            funcs.append(item)
    if not funcs:
        raise ValueError("at least one rate-limit key is needed")
    if len(funcs) == 1:
        only = funcs[0]
        return lambda scope: only(scope) or "ip:unknown"
    if len(funcs) == 2:  # the default shape, unrolled: this runs for every request
        first, second = funcs
        return lambda scope: first(scope) or second(scope) or "ip:unknown"

    def chain(scope: Scope) -> str:
        for func in funcs:
            found = func(scope)
            if found:
                return found
        return "ip:unknown"

    return chain
