"""OpenAPI 3.1 with the platform's shared components filled in.

FastAPI generates the document; this module adds, once per process (the
result is cached on the app):

* the ``Problem`` schema (RFC 9457) as ``application/problem+json`` on
  every error response, replacing FastAPI's own 422 schema;
* the standard error responses each operation can produce (400, 404, 413,
  415, 422, 500, 503, 504, depending on what the operation takes);
* the platform's security schemes (bearer JWT, API key);
* ``deprecated: true`` on operations under a deprecated version or route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from lms_shared import errors
from lms_shared.errors import Catalogue, ErrorCode
from lms_shared.http.problems import PROBLEM_CONTENT_TYPE, FieldError, Problem, ProblemRenderer
from lms_shared.http.versioning import DeprecationRules

__all__ = ["SECURITY_SCHEMES", "install_openapi", "problem_responses"]

SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token issued by the identity service (RFC 9068 JWT).",
    },
    "apiKeyAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key (also accepted as `Authorization: ApiKey <key>`).",
    },
}

_ALWAYS = (errors.INTERNAL_ERROR, errors.SERVICE_UNAVAILABLE, errors.TIMEOUT)
_WITH_INPUT = (errors.BAD_REQUEST, errors.VALIDATION_ERROR)
_WITH_BODY = (errors.PAYLOAD_TOO_LARGE, errors.UNSUPPORTED_MEDIA_TYPE)
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _problem_response(renderer: ProblemRenderer, code: ErrorCode) -> dict[str, Any]:
    example = {
        "type": renderer.type_uri(code),
        "title": code.title,
        "status": code.status,
        "code": code.slug,
    }
    return {
        "description": code.title,
        "content": {
            PROBLEM_CONTENT_TYPE: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "example": example,
            }
        },
    }


def problem_responses(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a route that raises these catalogue codes.

    Codes sharing a status are listed together, each as a named example,
    so a route's own codes (``course-not-published``) are documented with
    their own ``type`` rather than the status's generic one::

        @v1.post("/enrollments", responses=problem_responses(NOT_PUBLISHED, ALREADY_ENROLLED))

    The ``type`` URIs of the examples are filled in when the document is
    built (they depend on ``LMS_PROBLEM_BASE_URI``).
    """
    grouped: dict[int, list[ErrorCode]] = {}
    for code in codes:
        grouped.setdefault(code.status, []).append(code)
    out: dict[int | str, dict[str, Any]] = {}
    for status, group in grouped.items():
        out[status] = {
            "description": " / ".join(code.title for code in group),
            "content": {
                PROBLEM_CONTENT_TYPE: {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "examples": {
                        code.slug: {
                            "summary": code.title,
                            "value": {
                                "type": code.registered_type or _TYPE_PLACEHOLDER + code.slug,
                                "title": code.title,
                                "status": code.status,
                                "code": code.slug,
                            },
                        }
                        for code in group
                    },
                }
            },
        }
    return out


_TYPE_PLACEHOLDER = "lms-problem-base:"


def _fill_type_uris(node: Any, renderer: ProblemRenderer) -> None:
    if isinstance(node, dict):
        value = node.get("type")
        if isinstance(value, str) and value.startswith(_TYPE_PLACEHOLDER):
            node["type"] = renderer.base_uri + value.removeprefix(_TYPE_PLACEHOLDER)
        for child in node.values():
            _fill_type_uris(child, renderer)
    elif isinstance(node, list):
        for child in node:
            _fill_type_uris(child, renderer)


def _codes_for(operation: dict[str, Any], path: str) -> list[ErrorCode]:
    codes = list(_ALWAYS)
    if operation.get("parameters") or "requestBody" in operation:
        codes.extend(_WITH_INPUT)
    if "requestBody" in operation:
        codes.extend(_WITH_BODY)
    if "{" in path:
        codes.append(errors.NOT_FOUND)
    if operation.get("security"):
        codes.extend((errors.UNAUTHORIZED, errors.FORBIDDEN))
    return codes


def _by_status(status: str, catalogue: Catalogue) -> ErrorCode | None:
    if not status.isdigit() or not any(str(c.status) == status for c in catalogue.values()):
        return None
    return catalogue.for_status(int(status))


def build_openapi(
    app: FastAPI, renderer: ProblemRenderer, rules: DeprecationRules
) -> dict[str, Any]:
    """Generate the service's OpenAPI document with the shared components."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (Problem, FieldError):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)
        schemas[model.__name__] = schema
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)

    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, response in list(responses.items()):
                if status.isdigit() and int(status) >= 400:
                    code = _by_status(status, renderer.catalogue)
                    if code is not None and (
                        "content" not in response
                        or "HTTPValidationError" in str(response.get("content"))
                    ):
                        described = _problem_response(renderer, code)
                        described["description"] = response.get("description") or code.title
                        responses[status] = described
            for code in _codes_for(operation, path):
                responses.setdefault(str(code.status), _problem_response(renderer, code))
            if rules.match(path) is not None:
                operation["deprecated"] = True
    _fill_type_uris(doc.get("paths", {}), renderer)
    return doc


def install_openapi(
    app: FastAPI, renderer: ProblemRenderer, rules: DeprecationRules
) -> Callable[[], dict[str, Any]]:
    """Replace ``app.openapi`` with the cached, completed generator."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, renderer, rules)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return openapi
