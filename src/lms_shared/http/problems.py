"""RFC 9457 problem details: one renderer and the FastAPI exception handlers.

Every error a service answers with is ``application/problem+json``: an
``ErrorCode`` from :mod:`lms_shared.errors` gives the stable ``type`` URI,
title and status; ``detail`` explains the occurrence; ``instance`` is the
request path and ``request_id`` ties the response to the log lines.
Validation errors carry ``errors``: one entry per field with a JSON
pointer (RFC 6901) into the request body, or the parameter's name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from lms_shared import errors
from lms_shared.errors import Catalogue, ErrorCode, ProblemError
from lms_shared.models import validation_errors
from lms_shared.observability.context import request_id_var
from lms_shared.redaction import Redactor

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "FieldError",
    "Problem",
    "ProblemRenderer",
    "install_problem_handlers",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
# RFC 3986 pchar and "/" (sub-delims, ":", "@", unreserved); everything else is encoded
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def _no_null_defaults(schema: dict[str, Any]) -> None:
    # an optional member is absent, not null: no "default": null beside its type
    for member in schema.get("properties", {}).values():
        if isinstance(member, dict) and "default" in member and member["default"] is None:
            del member["default"]


def _problem_schema(schema: dict[str, Any]) -> None:
    _no_null_defaults(schema)
    schema["examples"] = [
        {
            "type": "https://lms.example.org/problems/not-found",
            "title": "Resource not found",
            "status": 404,
            "detail": "course 42 does not exist",
            "instance": "/v1/courses/42",
            "code": "not-found",
            "request_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        }
    ]


class FieldError(BaseModel):
    """One invalid field of a request."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults)

    pointer: str | SkipJsonSchema[None] = Field(
        None, description="JSON pointer into the body (RFC 6901)", examples=["#/title"]
    )
    parameter: str | SkipJsonSchema[None] = Field(
        None, description="query, path or header parameter name"
    )
    detail: str = Field(description="what is wrong with it")
    type: str = Field(description="machine-readable error kind", examples=["string_too_long"])


class Problem(BaseModel):
    """An RFC 9457 problem details object, as every error response carries."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_problem_schema)

    type: str = Field(description="URI identifying the problem type")
    title: str = Field(description="short summary of the problem type")
    status: int = Field(description="HTTP status code", ge=400, le=599)
    # optional members are absent, never null (RFC 9457 §3): the schema says so
    detail: str | SkipJsonSchema[None] = Field(None, description="explanation of this occurrence")
    instance: str | SkipJsonSchema[None] = Field(None, description="the request path")
    code: str = Field(description="stable error code from the catalogue")
    request_id: str | SkipJsonSchema[None] = Field(
        None, description="the X-Request-ID of the request"
    )
    errors: list[FieldError] | SkipJsonSchema[None] = Field(
        None, description="invalid fields, if any"
    )


class ProblemRenderer:
    """Renders problems to bytes; built once per service with its base URI.

    Args:
        base_uri: prefix of the ``type`` URIs, e.g.
            ``https://lms.example.org/problems/``.
        catalogue: the service's problem codes (OpenAPI documents them and
            HTTP errors map their status through it); the core codes when
            omitted.
    """

    def __init__(self, base_uri: str, catalogue: Catalogue | None = None) -> None:
        if not base_uri.endswith("/"):
            base_uri += "/"
        self.base_uri = base_uri
        self.catalogue = catalogue if catalogue is not None else Catalogue(errors.PROBLEMS)
        # extension members never echo a secret or personal value back
        self._redactor = Redactor()

    def type_uri(self, code: ErrorCode) -> str:
        """The stable ``type`` URI of a catalogue entry (its registered one, if any)."""
        return code.registered_type or self.base_uri + code.slug

    def body(
        self,
        code: ErrorCode,
        *,
        detail: str | None = None,
        instance: str | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> bytes:
        """The JSON bytes of a problem object."""
        doc: dict[str, Any] = {
            "type": self.type_uri(code),
            "title": code.title,
            "status": code.status,
        }
        if detail is not None:
            doc["detail"] = detail
        if instance is not None:
            # a URI reference (RFC 9457 §3.1.5): the decoded request path is
            # percent-encoded again, so non-ASCII and spaces never appear raw
            doc["instance"] = quote(instance, safe=_PATH_SAFE)
        doc["code"] = code.slug
        request_id = request_id_var.get()
        if request_id is not None:
            doc["request_id"] = request_id
        if extensions:
            for key, value in self._redactor.redact(dict(extensions)).items():
                doc.setdefault(key, value)
        return orjson.dumps(doc, default=str)

    def response(
        self,
        code: ErrorCode,
        *,
        detail: str | None = None,
        instance: str | None = None,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> Response:
        """A Starlette response carrying the problem."""
        return Response(
            self.body(code, detail=detail, instance=instance, extensions=extensions),
            status_code=code.status,
            headers=dict(headers or {}),
            media_type=PROBLEM_CONTENT_TYPE,
        )

    def raw(
        self,
        code: ErrorCode,
        *,
        detail: str | None = None,
        instance: str | None = None,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, raw headers and body, for pure ASGI middleware."""
        body = self.body(code, detail=detail, instance=instance)
        raw_headers = [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ]
        return code.status, raw_headers, body


def _is_json_content_type(value: str | None) -> bool:
    if not value:
        return False
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def install_problem_handlers(app: FastAPI, renderer: ProblemRenderer) -> None:
    """Answer HTTP errors, validation errors and ``ProblemError`` as problems.

    Unhandled exceptions are answered by the request middleware (it sits
    outside these handlers and also logs the traceback).
    """

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return renderer.response(
            exc.problem_code,
            detail=exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            extensions=exc.extensions,
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = renderer.catalogue.for_status(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if detail == code.title or detail in {"Not Found", "Method Not Allowed"}:
            detail = _default_detail(code, request)
        return renderer.response(
            code, detail=detail, instance=request.url.path, headers=exc.headers
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        items = list(exc.errors())
        json_errors = [e for e in items if e.get("type") == "json_invalid"]
        if json_errors:
            ctx = json_errors[0].get("ctx") or {}
            loc = json_errors[0].get("loc", ())
            position = loc[1] if len(loc) > 1 else "?"
            return renderer.response(
                errors.MALFORMED_JSON,
                detail=f"{ctx.get('error', 'invalid JSON')} at position {position}",
                instance=request.url.path,
            )
        content_type = request.headers.get("content-type")
        body_errors = [e for e in items if tuple(e.get("loc", ()))[:1] == ("body",)]
        if body_errors and content_type and not _is_json_content_type(content_type):
            return renderer.response(
                errors.UNSUPPORTED_MEDIA_TYPE,
                detail=f"expected application/json, got {content_type.split(';')[0]}",
                instance=request.url.path,
            )
        count = len(items)
        return renderer.response(
            errors.VALIDATION_ERROR,
            detail=f"{count} invalid field{'s' if count != 1 else ''}",
            instance=request.url.path,
            extensions={"errors": validation_errors(items)},
        )

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)


def _default_detail(code: ErrorCode, request: Request) -> str:
    if code is errors.NOT_FOUND:
        return f"no route matches {request.method} {request.url.path}"
    if code is errors.METHOD_NOT_ALLOWED:
        return f"{request.method} is not allowed on {request.url.path}"
    return code.title
