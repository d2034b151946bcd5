"""Events: CloudEvents envelopes, typed event schemas and the transport protocol.

* **Envelope**: :class:`CloudEvent` (CloudEvents 1.0, validated on
  creation); the JSON format and batches (:func:`from_json`,
  :func:`to_json`, :func:`from_json_batch`, :func:`to_json_batch`); the
  HTTP binding (:func:`from_http`, :func:`to_http`, :func:`from_http_batch`,
  :func:`to_http_batch`); bounds in :class:`EnvelopeLimits`.
* **Schemas**: :class:`Event` models (``type=``/``version=`` class
  keywords), the :class:`EventRegistry` (encode, decode, upcasters, JSON
  Schemas), :func:`compare_event_schemas` and the AsyncAPI 3.0 document
  (:func:`asyncapi`).
* **Transport protocol**: :class:`Transport`, :class:`Message`,
  :class:`Delivery`, :class:`SubscriptionSpec`, :class:`Subscription`; the
  in-process :class:`MemoryTransport` (tests, test double);
  :func:`transport_from_url` (``LMS_EVENTS_URL``: a scheme to a backend,
  imported on use).
* **Bus**: :class:`EventBus` (publish, subscribe, retries with
  :class:`RetryPolicy`, dead letters, drain; ``service.events``),
  :func:`current_event`, :class:`Outcome`; trace context
  (:func:`current_trace_context`, :func:`use_trace_context`).
* **Consistency**: the outbox (:class:`OutboxStore`, :class:`OutboxRelay`)
  and the inbox (:class:`Inbox`, :class:`MemoryInbox`); the SQL stores are
  in :mod:`lms_shared.events.sql` (imported on use: it needs SQLAlchemy).
* **Dead letters**: :class:`DeadLetter`, :class:`DeadLetterQuery`,
  :class:`DeadLetterStore`, :class:`MemoryDeadLetterStore`,
  :func:`replay_dead_letters`.
* **Errors**: :class:`EventError` and its tree (see ``_errors``).

See ``docs/events.md``.
"""

from lms_shared.events._asyncapi import asyncapi
from lms_shared.events._attributes import ExtensionValue, format_timestamp, parse_timestamp
from lms_shared.events._binary import from_message, to_message
from lms_shared.events._bus import EventBus, EventContext, Outcome, RetryPolicy, current_event
from lms_shared.events._dead_letters import (
    DeadLetter,
    DeadLetterQuery,
    DeadLetterStore,
    MemoryDeadLetterStore,
    ReplayReport,
    replay_dead_letters,
)
from lms_shared.events._envelope import (
    NO_DATA,
    SPECVERSION,
    CloudEvent,
    Data,
    EnvelopeLimits,
    NoData,
    is_json_content_type,
)
from lms_shared.events._errors import (
    PROBLEMS,
    DeadLetterStoreUnavailable,
    EventError,
    EventSchemaError,
    InvalidEvent,
    InvalidEventData,
    PublishFailed,
    ReplayUnsupported,
    TransportUnavailable,
    UnknownEventType,
    UnsupportedEventVersion,
)
from lms_shared.events._factory import TRANSPORTS, TransportOptions, transport_from_url
from lms_shared.events._http import from_http, from_http_batch, to_http, to_http_batch
from lms_shared.events._inbox import DuplicateDelivery, Inbox, InboxEntry, MemoryInbox
from lms_shared.events._json import (
    BATCH_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    from_json,
    from_json_batch,
    to_json,
    to_json_batch,
)
from lms_shared.events._memory import MemoryTransport
from lms_shared.events._outbox import OutboxRelay, OutboxStore
from lms_shared.events._schema import Event, EventRegistry, Upcaster, compare_event_schemas
from lms_shared.events._trace import TraceContext, current_trace_context, use_trace_context
from lms_shared.events._transport import (
    Delivery,
    Handler,
    Message,
    Subscription,
    SubscriptionSpec,
    Transport,
)

__all__ = [
    "BATCH_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "NO_DATA",
    "PROBLEMS",
    "SPECVERSION",
    "TRANSPORTS",
    "CloudEvent",
    "Data",
    "DeadLetter",
    "DeadLetterQuery",
    "DeadLetterStore",
    "DeadLetterStoreUnavailable",
    "Delivery",
    "DuplicateDelivery",
    "EnvelopeLimits",
    "Event",
    "EventBus",
    "EventContext",
    "EventError",
    "EventRegistry",
    "EventSchemaError",
    "ExtensionValue",
    "Handler",
    "Inbox",
    "InboxEntry",
    "InvalidEvent",
    "InvalidEventData",
    "MemoryDeadLetterStore",
    "MemoryInbox",
    "MemoryTransport",
    "Message",
    "NoData",
    "OutboxRelay",
    "OutboxStore",
    "Outcome",
    "PublishFailed",
    "ReplayReport",
    "ReplayUnsupported",
    "RetryPolicy",
    "Subscription",
    "SubscriptionSpec",
    "TraceContext",
    "Transport",
    "TransportOptions",
    "TransportUnavailable",
    "UnknownEventType",
    "UnsupportedEventVersion",
    "Upcaster",
    "asyncapi",
    "compare_event_schemas",
    "current_event",
    "current_trace_context",
    "format_timestamp",
    "from_http",
    "from_http_batch",
    "from_json",
    "from_json_batch",
    "from_message",
    "is_json_content_type",
    "parse_timestamp",
    "replay_dead_letters",
    "to_http",
    "to_http_batch",
    "to_json",
    "to_json_batch",
    "to_message",
    "transport_from_url",
    "use_trace_context",
]
