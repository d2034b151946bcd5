"""Redaction: the one source of secret and personal-data keys, the mask, and masking.

A leaf: it imports nothing else of the package, so settings, logging,
problem rendering, models and the event bus all hide the same values the
same way.

* :data:`SECRET_KEYS`, :data:`PII_KEYS`, :data:`SECRET_MARKERS`, :data:`MASK`;
* :class:`Redactor`: masks values under those keys at any depth, and
  passwords in URLs and bearer credentials inside strings (a structlog
  processor too);
* :func:`redact_url`: ``postgres://user:***@host/db``;
* :class:`Personal`: the field marker for personal data in models, with
  :func:`for_operators`, :func:`redact` and the structlog processor
  :func:`redact_personal_data`.
"""

from lms_shared.redaction._keys import MASK, PII_KEYS, SECRET_KEYS, SECRET_MARKERS
from lms_shared.redaction._personal import (
    Personal,
    for_operators,
    is_personal,
    personal_fields,
    redact,
    redact_personal_data,
)
from lms_shared.redaction._redactor import Redactor
from lms_shared.redaction._urls import redact_url

__all__ = [
    "MASK",
    "PII_KEYS",
    "SECRET_KEYS",
    "SECRET_MARKERS",
    "Personal",
    "Redactor",
    "for_operators",
    "is_personal",
    "personal_fields",
    "redact",
    "redact_personal_data",
    "redact_url",
]
