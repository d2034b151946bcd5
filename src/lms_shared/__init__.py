"""lms-shared: the microservice chassis of the LMS platform.

The front door: build a service with :func:`create_service`; everything
else lives in one subpackage per capability (``lms_shared.http``,
``lms_shared.observability``, ``lms_shared.testing``, ...).
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from lms_shared.clock import Clock, SystemClock
from lms_shared.errors import (
    BadRequest,
    Catalogue,
    ComponentError,
    ConfigurationError,
    Conflict,
    ErrorCode,
    LmsError,
    NotFound,
    PreconditionFailed,
    ProblemError,
    ServiceUnavailable,
    SettingsError,
)
from lms_shared.lifecycle import Component, FunctionComponent
from lms_shared.service import Service, create_service
from lms_shared.settings import Settings, load_settings

try:
    __version__ = _version("lms-shared")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "BadRequest",
    "Catalogue",
    "Clock",
    "Component",
    "ComponentError",
    "ConfigurationError",
    "Conflict",
    "ErrorCode",
    "FunctionComponent",
    "LmsError",
    "NotFound",
    "PreconditionFailed",
    "ProblemError",
    "Service",
    "ServiceUnavailable",
    "Settings",
    "SettingsError",
    "SystemClock",
    "__version__",
    "create_service",
    "load_settings",
]
