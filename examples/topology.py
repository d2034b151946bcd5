"""Where the example services listen: one port base, four consecutive ports.

``LMS_DEMO_PORT_BASE`` (default 8000) places identity at base+1, courses at
base+2, enrollments at base+3 and grading at base+4. A service finds another
through ``LMS_DEMO_<NAME>_URL`` (set by the demo runner), falling back to the
port base. Discovery proper (``LMS_DISCOVERY_URL``) replaces this later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = [
    "DEFAULT_PORT_BASE",
    "HOST",
    "SERVICES",
    "port_base",
    "service_port",
    "service_url",
    "url_variable",
]

SERVICES = ("identity", "courses", "enrollments", "grading")
DEFAULT_PORT_BASE = 8000
HOST = "127.0.0.1"


def port_base(environ: Mapping[str, str] = os.environ) -> int:
    """The port base from ``LMS_DEMO_PORT_BASE``.

    Raises:
        ValueError: the variable is not an integer between 1 and 65530.
    """
    raw = environ.get("LMS_DEMO_PORT_BASE", str(DEFAULT_PORT_BASE))
    try:
        base = int(raw)
    except ValueError:
        raise ValueError(f"LMS_DEMO_PORT_BASE must be an integer, got {raw!r}") from None
    if not 1 <= base <= 65535 - len(SERVICES):
        raise ValueError(f"LMS_DEMO_PORT_BASE must be between 1 and 65531, got {base}")
    return base


def service_port(name: str, base: int) -> int:
    """The port of service ``name`` for a port base.

    Raises:
        ValueError: ``name`` is not one of :data:`SERVICES`.
    """
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICES)}")
    return base + 1 + SERVICES.index(name)


def url_variable(name: str) -> str:
    """The environment variable holding the URL of service ``name``."""
    return f"LMS_DEMO_{name.upper()}_URL"


def service_url(name: str, environ: Mapping[str, str] = os.environ) -> str:
    """The base URL of service ``name`` (no trailing slash)."""
    explicit = environ.get(url_variable(name))
    if explicit:
        return explicit.rstrip("/")
    return f"http://{HOST}:{service_port(name, port_base(environ))}"
