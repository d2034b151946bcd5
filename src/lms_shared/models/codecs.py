"""Codecs: DTOs and events to bytes and back, JSON or MessagePack.

One small protocol, two implementations, both exact on a round trip
(``codec.decode(codec.encode(m), type(m)) == m`` for every model)::

    payload = JSON.encode(course)                 # bytes
    again = JSON.decode(payload, Course)          # validated
    codec = codec_for("application/msgpack")      # by media type

JSON goes straight through pydantic-core (no intermediate ``str`` or
dict). MessagePack (ormsgpack) carries the same JSON-mode data, so both
formats hold identical values: datetimes as RFC 3339 ``Z`` strings, UUIDs
and URLs as strings.

Decoding raises :class:`~lms_shared.models.MalformedPayload` (400) for
bytes that are not JSON or MessagePack, and
:class:`~lms_shared.models.ModelValidationError` (422) for data that does
not fit the model.
"""

from __future__ import annotations

from typing import Final, Protocol, TypeVar, cast, runtime_checkable

import ormsgpack
from pydantic import BaseModel, ValidationError

from lms_shared import errors
from lms_shared.errors import ProblemError
from lms_shared.models._errors import MalformedPayload
from lms_shared.models._validation import problem_from

__all__ = ["CODECS", "JSON", "MSGPACK", "Codec", "JsonCodec", "MsgpackCodec", "codec_for"]

M = TypeVar("M", bound=BaseModel)


@runtime_checkable
class Codec(Protocol):
    """Turns models into bytes of one media type, and back."""

    content_type: str
    """The media type of the bytes (``application/json``)."""

    def encode(self, value: BaseModel) -> bytes:
        """The bytes of ``value``."""
        ...

    def decode(self, data: bytes, model: type[M]) -> M:
        """A validated ``model`` from bytes made by :meth:`encode`.

        Raises:
            MalformedPayload: the bytes are not of this codec's format.
            ModelValidationError: the data does not fit ``model``.
        """
        ...


class JsonCodec:
    """JSON through pydantic-core's fast path (UTF-8 bytes)."""

    content_type: str = "application/json"

    def encode(self, value: BaseModel) -> bytes:
        """The JSON bytes of ``value`` (what ``model_dump_json`` writes, as bytes)."""
        return value.__pydantic_serializer__.to_json(value)

    def decode(self, data: bytes, model: type[M]) -> M:
        """``model`` validated from JSON bytes (``model_validate_json``)."""
        try:
            return cast(M, model.__pydantic_validator__.validate_json(data))
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)
            if first and first[0]["type"] == "json_invalid":
                raise MalformedPayload(f"not valid JSON: {first[0]['msg']}") from None
            raise problem_from(exc) from None


class MsgpackCodec:
    """MessagePack (ormsgpack) of the models' JSON-mode data."""

    content_type: str = "application/msgpack"

    def encode(self, value: BaseModel) -> bytes:
        """The MessagePack bytes of ``value``."""
        return ormsgpack.packb(value.__pydantic_serializer__.to_python(value, mode="json"))

    def decode(self, data: bytes, model: type[M]) -> M:
        """``model`` validated from MessagePack bytes."""
        try:
            raw = ormsgpack.unpackb(data)
        except (ValueError, TypeError) as exc:  # ormsgpack.MsgpackDecodeError is a ValueError
            raise MalformedPayload(f"not valid MessagePack: {exc}") from None
        try:
            return cast(M, model.__pydantic_validator__.validate_python(raw))
        except ValidationError as exc:
            raise problem_from(exc) from None


JSON: Final = JsonCodec()
"""The JSON codec."""
MSGPACK: Final = MsgpackCodec()
"""The MessagePack codec."""

CODECS: Final[dict[str, Codec]] = {
    "application/json": JSON,
    "application/msgpack": MSGPACK,
    "application/vnd.msgpack": MSGPACK,
    "application/x-msgpack": MSGPACK,
}
"""Codecs by media type (parameters such as ``charset`` are ignored)."""


def codec_for(content_type: str | None) -> Codec:
    """The codec of a media type; JSON when ``content_type`` is empty.

    Raises:
        ProblemError: ``unsupported-media-type`` (415) for another media type.
    """
    if not content_type:
        return JSON
    media = content_type.split(";", 1)[0].strip().lower()
    codec = CODECS.get(media)
    if codec is None:
        if media.startswith("application/") and media.endswith("+json"):
            return JSON
        raise ProblemError(
            f"cannot decode {media}; use one of {', '.join(sorted(CODECS))}",
            code=errors.UNSUPPORTED_MEDIA_TYPE,
        )
    return codec
