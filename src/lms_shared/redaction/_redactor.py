"""Redaction of secrets and personal data in logs, dumps and problem bodies.

:class:`Redactor` masks the *values* of keys that name a secret
(``password``, ``token``, ``authorization``, ``api_key``, ``cookie``...)
or personal data (``email``, ``phone``, ``date_of_birth``, ``address``...),
at any depth of nested dicts and lists, and also masks what gives itself
away inside other strings: a password in a URL (``postgres://u:***@h``)
and ``Bearer``/``ApiKey`` credentials. It is a structlog processor::

    structlog.configure(processors=[..., Redactor(), renderer])

and a plain function for anything else (``redactor.redact(mapping)``).
Keys are matched case-insensitively, ``-`` and ``_`` alike, by exact name
or by suffix (``db_password``, ``x-api-key``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from structlog.typing import EventDict, WrappedLogger

from lms_shared.caching import BoundedCache
from lms_shared.redaction._keys import MASK, PII_KEYS, SECRET_KEYS
from lms_shared.redaction._urls import redact_url

__all__ = ["Redactor"]

_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic|apikey|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_MAX_DEPTH = 8


class Redactor:
    """Masks secret and personal values; a structlog processor too.

    Args:
        secret_keys: key names treated as secrets.
        pii_keys: key names treated as personal data.
        extra_keys: more names to mask (a service's own sensitive fields).
        mask: the replacement value.
    """

    def __init__(
        self,
        *,
        secret_keys: Iterable[str] = SECRET_KEYS,
        pii_keys: Iterable[str] = PII_KEYS,
        extra_keys: Iterable[str] = (),
        mask: str = MASK,
    ) -> None:
        names = {_norm(k) for k in (*secret_keys, *pii_keys, *extra_keys)}
        self.mask = mask
        self._exact = frozenset(names)
        self._suffixes = tuple(sorted("_" + n for n in names))
        self._decisions: BoundedCache[str, bool] = BoundedCache(4096)

    def sensitive(self, key: str) -> bool:
        """Whether values under ``key`` are masked."""
        known = self._decisions.get(key)
        if known is None:
            norm = _norm(key)
            known = norm in self._exact or norm.endswith(self._suffixes)
            self._decisions.set(key, known)
        return known

    def redact(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``data`` with sensitive values masked (input untouched)."""
        return {k: self._value(k, v, 0) for k, v in data.items()}

    def redact_text(self, text: str) -> str:
        """``text`` with URL passwords and bearer/API-key credentials masked."""
        if "://" in text and "@" in text:
            text = " ".join(redact_url(part) if "://" in part else part for part in text.split(" "))
        if " " in text:
            text = _CREDENTIAL.sub(lambda m: f"{m.group(1)} {self.mask}", text)
        return text

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        """The structlog processor: redact the event dict in place."""
        for key, value in event_dict.items():
            event_dict[key] = self._value(key, value, 0)
        return event_dict

    def _value(self, key: object, value: Any, depth: int) -> Any:
        if isinstance(key, str) and self.sensitive(key):
            return value if value is None else self.mask
        if isinstance(value, str):
            return self.redact_text(value)
        if depth >= _MAX_DEPTH:  # too deep to look into: hidden, never passed on unread
            return self.mask if isinstance(value, Mapping | list | tuple) else value
        if isinstance(value, Mapping):
            return {k: self._value(k, v, depth + 1) for k, v in value.items()}
        if type(value) is list or type(value) is tuple:
            return type(value)(self._value(None, v, depth + 1) for v in value)
        return value


def _norm(key: str) -> str:
    return key.lower().replace("-", "_").strip("_")
