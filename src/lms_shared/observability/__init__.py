"""Observability: structured logging (tracing and metrics come later).

The logging configuration is the one process-wide global the library owns;
it is set in the service lifespan, never at import.
"""

from lms_shared.observability._logging import (
    LineWriter,
    configure_logging,
    get_logger,
    is_configured,
    reset_logging,
)
from lms_shared.observability.context import current_request_id

__all__ = [
    "LineWriter",
    "configure_logging",
    "current_request_id",
    "get_logger",
    "is_configured",
    "reset_logging",
]
