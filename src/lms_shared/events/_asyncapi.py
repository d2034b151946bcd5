"""An AsyncAPI 3.0 document for the events a service publishes and consumes.

One channel per event type (its address is the type), one message per
type with the payload's JSON Schema and the CloudEvents context attributes
as headers, and one ``send`` or ``receive`` operation per direction. The
payload schemas are generated together (pydantic's ``models_json_schema``)
so nested models shared by two events appear once under
``components/schemas`` and every ``$ref`` resolves inside the document.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from pydantic.json_schema import models_json_schema

from lms_shared.events._schema import Event

__all__ = ["ASYNCAPI_VERSION", "asyncapi"]

ASYNCAPI_VERSION = "3.0.0"
_CONTEXT = "CloudEventContext"


def asyncapi(
    service: str,
    *,
    version: str = "1.0.0",
    publishes: Sequence[type[Event]] = (),
    consumes: Sequence[type[Event]] = (),
    description: str | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of a service's events (a JSON-ready dict).

    Args:
        service: the service's name (the document title).
        version: the service's (API) version.
        publishes: the event classes the service sends.
        consumes: the event classes the service receives.
        description: a description for ``info``.

    Raises:
        ValueError: an abstract event class, or two classes for one type.
    """
    models: dict[str, type[Event]] = {}
    for event in (*publishes, *consumes):
        event_type = event.event_type() if event.schema_name else None
        if event_type is None:
            raise ValueError(f"{event.__name__} is an abstract event (declare it with type=)")
        if models.setdefault(event_type, event) is not event:
            raise ValueError(f"two classes declare event type {event_type!r}")
    refs, top = models_json_schema(
        [(model, "validation") for model in models.values()],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = {_CONTEXT: _context_schema(), **top.get("$defs", {})}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    for event_type, model in sorted(models.items()):
        messages[event_type] = _message(model, refs[(model, "validation")])
        channels[event_type] = {
            "address": event_type,
            "messages": {event_type: {"$ref": f"#/components/messages/{event_type}"}},
        }
    operations: dict[str, Any] = {}
    for action, events in (("send", publishes), ("receive", consumes)):
        for event in events:
            event_type = event.event_type()
            operations[f"{action}.{event_type}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{event_type}"},
                "messages": [{"$ref": f"#/channels/{event_type}/messages/{event_type}"}],
            }
    info: dict[str, Any] = {"title": service, "version": version}
    if description:
        info["description"] = description
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": info,
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _message(model: type[Event], payload: dict[str, Any]) -> dict[str, Any]:
    event_type, version = model.event_type(), model.event_version()
    message: dict[str, Any] = {
        "name": event_type,
        "title": model.__name__,
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "allOf": [
                {"$ref": f"#/components/schemas/{_CONTEXT}"},
                {
                    "properties": {
                        "type": {"const": event_type},
                        "schemaversion": {"const": version},
                    },
                },
            ],
        },
        "payload": payload,
        "correlationId": {"location": "$message.header#/correlationid"},
        "x-schema-version": version,
    }
    doc = model.__dict__.get("__doc__")
    if doc:
        message["summary"] = inspect.cleandoc(doc).split("\n", 1)[0]
    return message


def _context_schema() -> dict[str, Any]:
    text = {"type": "string", "minLength": 1}
    stamp = {"type": "string", "format": "date-time"}
    return {
        "type": "object",
        "description": "CloudEvents 1.0 context attributes (binary mode: one header each).",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": text,
            "source": {"type": "string", "format": "uri-reference", "minLength": 1},
            "type": text,
            "time": stamp,
            "datacontenttype": {"const": "application/json"},
            "dataschema": {"type": "string", "format": "uri"},
            "subject": text,
            "schemaversion": {"type": "integer", "minimum": 1},
            "traceparent": {
                "type": "string",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}",
            },
            "tracestate": {"type": "string", "maxLength": 512},
            "correlationid": text,
            "causationid": text,
            "tenant": text,
            "partitionkey": text,
            "deadline": stamp,
        },
    }
