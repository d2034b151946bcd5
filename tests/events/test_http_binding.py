"""The HTTP binding (structured, binary, batched) and transport messages."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from lms_shared.events import (
    NO_DATA,
    CloudEvent,
    EnvelopeLimits,
    InvalidEvent,
    Message,
    from_http,
    from_http_batch,
    from_message,
    to_http,
    to_http_batch,
    to_message,
)
from lms_shared.events._http import decode_header, encode_header

EVENT = CloudEvent(
    id="1234-1234-1234",
    source="/mycontext/subcontext",
    type="com.example.someevent",
    time=datetime(2018, 4, 5, 3, 56, 24, tzinfo=UTC),
    datacontenttype="application/json",
    subject="Euro \u20ac \U0001f600",
    extensions={"schemaversion": 2, "tenant": 'a "quoted" 100%'},
    data={"appinfoA": "abc", "appinfoB": 123},
)
BINARY = {
    "ce-specversion": "1.0",
    "ce-type": "com.example.someevent",
    "ce-time": "2018-04-05T03:56:24Z",
    "ce-id": "1234-1234-1234",
    "ce-source": "/mycontext/subcontext",
}


def test_header_values_are_percent_encoded_as_the_binding_shows() -> None:
    assert encode_header("Euro \u20ac \U0001f600") == "Euro%20%E2%82%AC%20%F0%9F%98%80"
    assert encode_header('a "b" 100%') == "a%20%22b%22%20100%25"
    assert encode_header("/path?q=1&r=~") == "/path?q=1&r=~"
    assert decode_header("Euro%20%e2%82%ac") == "Euro \u20ac"
    assert decode_header("%41%42") == "AB"  # needless encoding is accepted
    assert decode_header('"quoted \\"x\\" %25"') == 'quoted "x" %'


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("%C0%A0", "UTF-8"),  # the binding's own overlong example
        ("%FF", "UTF-8"),
        ("50%", "percent escape"),
        ("%G1", "percent escape"),
        ('"unterminated', "quoted string"),
        ("caf\u00e9", "printable ASCII"),
    ],
)
def test_broken_header_values_are_refused(value: str, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        decode_header(value)


def test_binary_mode_roundtrip() -> None:
    headers, body = to_http(EVENT)
    assert headers["content-type"] == "application/json"
    assert "ce-datacontenttype" not in headers
    assert headers["ce-subject"] == "Euro%20%E2%82%AC%20%F0%9F%98%80"
    assert headers["ce-schemaversion"] == "2"
    assert orjson.loads(body) == EVENT.data
    assert from_http(headers, body) == EVENT


def test_structured_mode_roundtrip() -> None:
    headers, body = to_http(EVENT, structured=True)
    assert headers == {"content-type": "application/cloudevents+json; charset=utf-8"}
    assert from_http(headers, body) == EVENT
    upper = {"Content-Type": "Application/CloudEvents+JSON"}
    assert from_http(upper, body) == EVENT


def test_the_binding_example_request_is_read() -> None:
    headers = [(k.upper(), v) for k, v in BINARY.items()]
    headers.append(("Content-Type", "application/json; charset=utf-8"))
    event = from_http(headers, b'{"x": 1}')
    assert event.data == {"x": 1}
    assert event.datacontenttype == "application/json; charset=utf-8"
    raw = [(k.encode(), v.encode()) for k, v in BINARY.items()]  # ASGI's raw headers
    assert from_http(raw, b"").data is NO_DATA


def test_binary_data_of_other_types_stays_bytes() -> None:
    event = from_http({**BINARY, "content-type": "application/octet-stream"}, b"\x00\xff")
    assert event.data == b"\x00\xff"
    text = CloudEvent(id="1", source="/s", type="t", datacontenttype="text/plain", data="h\u00e9")
    headers, body = to_http(text)
    assert body == "h\u00e9".encode()
    assert from_http(headers, body).data == body


def test_json_data_without_content_type_is_written_as_application_json() -> None:
    implied = CloudEvent(id="1", source="/s", type="t", data="I'm just a string")
    headers, body = to_http(implied)
    assert headers["content-type"] == "application/json"
    assert body == b'"I\'m just a string"'


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({"content-type": "application/json"}, b"{}", "no ce-specversion"),
        ({**BINARY, "ce-datacontenttype": "text/plain"}, b"", "Content-Type"),
        ({**BINARY, "ce-specversion": "0.3"}, b"", "specversion"),
        ({**BINARY, "ce-bad_name": "x"}, b"", "lower-case"),
        ({**BINARY, "ce-time": "noon"}, b"", "RFC 3339"),
        ({**BINARY, "content-type": "application/json"}, b"{nope", "malformed JSON"),
        ({"content-type": "application/cloudevents+avro"}, b"", "not supported"),
        ({"content-type": "application/cloudevents-batch+json"}, b"[]", "batch"),
        ({"content-type": "application/cloudevents+json; charset=latin-1"}, b"{}", "charset"),
        ({"content-type": "application/cloudevents+json"}, b"[1]", "JSON object"),
    ],
)
def test_invalid_http_messages_are_refused(
    headers: dict[str, str], body: bytes, reason: str
) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        from_http(headers, body)


def test_duplicated_ce_headers_are_refused() -> None:
    pairs = [*BINARY.items(), ("CE-ID", "other")]
    with pytest.raises(InvalidEvent, match="more than once"):
        from_http(pairs, b"")
    with pytest.raises(InvalidEvent, match="headers"):
        from_http([("x-h", "v")] * 300, b"")


def test_a_ten_thousand_level_binary_body_is_a_clean_invalid_event() -> None:
    headers = {**BINARY, "content-type": "application/json"}
    with pytest.raises(InvalidEvent):
        from_http(headers, b"[" * 10_000 + b"]" * 10_000)
    with pytest.raises(InvalidEvent, match="deeper"):
        from_http(headers, b"[" * 100 + b"]" * 100)


def test_binary_mode_is_bounded() -> None:
    limits = EnvelopeLimits(max_bytes=300, max_attributes=6)
    with pytest.raises(InvalidEvent, match="larger than 300"):
        from_http({**BINARY, "content-type": "text/plain"}, b"x" * 300, limits=limits)
    with pytest.raises(InvalidEvent, match="at most 6 attributes"):
        from_http({**BINARY, "ce-a": "1", "ce-b": "2"}, b"", limits=limits)


def test_batches_over_http() -> None:
    headers, body = to_http_batch([EVENT, EVENT])
    assert headers["content-type"].startswith("application/cloudevents-batch+json")
    assert from_http_batch(headers, body) == [EVENT, EVENT]
    with pytest.raises(InvalidEvent, match="batch needs"):
        from_http_batch({"content-type": "application/json"}, body)


def test_messages_carry_the_binary_mode() -> None:
    message = to_message(EVENT)
    assert message.attributes["datacontenttype"] == "application/json"
    assert message.attributes["subject"] == EVENT.subject  # canonical, not percent-encoded
    assert message.type == EVENT.type
    assert from_message(message) == EVENT
    with pytest.raises(InvalidEvent, match="larger than"):
        from_message(message, limits=EnvelopeLimits(max_bytes=50))
    broken = Message({**message.attributes, "time": "soon"}, message.data)
    with pytest.raises(InvalidEvent, match="RFC 3339"):
        from_message(broken)
