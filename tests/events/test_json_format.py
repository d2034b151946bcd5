"""The JSON event format and JSON batch format, with the spec's own examples."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from lms_shared.events import (
    NO_DATA,
    CloudEvent,
    EnvelopeLimits,
    InvalidEvent,
    from_json,
    from_json_batch,
    to_json,
    to_json_batch,
)

BASE: dict[str, Any] = {
    "specversion": "1.0",
    "type": "com.example.someevent",
    "source": "/mycontext",
    "id": "A234-1234-1234",
    "time": "2018-04-05T17:31:00Z",
    "comexampleextension1": "value",
    "comexampleothervalue": 5,
}


def doc(**members: Any) -> bytes:
    return orjson.dumps({**BASE, **members})


def test_the_spec_binary_example_reads_data_base64() -> None:
    event = from_json(
        doc(datacontenttype="application/vnd.apache.thrift.binary", data_base64="AAEC/w==")
    )
    assert event.data == b"\x00\x01\x02\xff"
    assert event.time == datetime(2018, 4, 5, 17, 31, tzinfo=UTC)
    assert event.extensions == {"comexampleextension1": "value", "comexampleothervalue": 5}
    assert orjson.loads(to_json(event))["data_base64"] == "AAEC/w=="


def test_the_spec_xml_example_keeps_the_string() -> None:
    event = from_json(doc(datacontenttype="application/xml", data='<much wow="xml"/>'))
    assert event.data == '<much wow="xml"/>'
    assert "unsetextension" not in from_json(doc(unsetextension=None)).extensions


def test_json_data_is_a_json_value_and_null_attributes_are_absent() -> None:
    event = from_json(doc(subject=None, datacontenttype="application/json", data={"a": 1}))
    assert event.subject is None
    assert event.data == {"a": 1}
    string = from_json(doc(data="I'm just a string"))  # no datacontenttype: JSON
    assert string.data == "I'm just a string"
    assert string.datacontenttype is None


def test_null_data_differs_from_no_data() -> None:
    assert from_json(doc(data=None)).data is None
    assert from_json(doc()).data is NO_DATA
    assert b'"data":null' in to_json(from_json(doc(data=None)))
    assert b'"data"' not in to_json(from_json(doc()))


def test_roundtrip_keeps_every_attribute_and_type() -> None:
    event = CloudEvent(
        id="1",
        source="https://lms.example/courses",
        type="lms.course.published",
        datacontenttype="application/json",
        dataschema="https://lms.example/schemas/course-published/1",
        subject="course/42",
        time=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        extensions={"schemaversion": 3, "flag": False, "blob": b"\x01", "tenant": "t1"},
        data={"nested": [1, {"x": None}]},
    )
    text = to_json(event)
    again = from_json(text)
    # Binary extensions become their base64 String in JSON: the one lossy type
    assert again == CloudEvent(
        **{**_fields(event), "extensions": {**event.extensions, "blob": "AQ=="}}
    )
    parsed = orjson.loads(text)
    assert parsed["schemaversion"] == 3
    assert parsed["flag"] is False


def _fields(event: CloudEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in CloudEvent.__dataclass_fields__}


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ({"data": {"a": 1}, "data_base64": "AA=="}, "mutually exclusive"),
        ({"datacontenttype": "application/xml", "data": {"a": 1}}, "JSON string"),
        ({"data_base64": "not base64!"}, "base64"),
        ({"data_base64": 5}, "base64"),
        ({"specversion": "0.3"}, "specversion"),
        ({"specversion": None}, "'specversion' is missing"),
        ({"id": None}, "'id' is missing"),
        ({"id": 5}, "JSON string"),
        ({"time": 1712345678}, "JSON string"),
        ({"time": "yesterday"}, "RFC 3339"),
        ({"comexampleothervalue": 5.0}, "boolean, integer or string"),
        ({"comexampleothervalue": 2**31}, "32-bit"),
        ({"comexampleothervalue": {"x": 1}}, "boolean, integer or string"),
        ({"Bad": "x"}, "lower-case"),
        ({"schemaversion": "x"}, "integer"),
    ],
)
def test_invalid_documents_are_refused(members: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        from_json(doc(**members))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[]", "JSON object"),
        (b'"event"', "JSON object"),
        (b"{", "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        (b'{"id": "\\ud800"}', "malformed JSON"),
        (b"", "malformed JSON"),
    ],
)
def test_malformed_bytes_are_invalid_events(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        from_json(body)


def test_a_huge_json_number_is_not_an_integer() -> None:
    body = doc()[:-1] + b',"big":1000000000000000000000000000000}'
    with pytest.raises(InvalidEvent, match="boolean, integer or string"):
        from_json(body)


def test_ten_thousand_levels_are_a_clean_invalid_event() -> None:
    deep = b'{"data":' + b"[" * 10_000 + b"]" * 10_000 + b"," + doc()[1:]
    with pytest.raises(InvalidEvent, match="malformed JSON"):
        from_json(deep)
    with pytest.raises(InvalidEvent):
        from_json_batch(b"[" * 10_000 + b"]" * 10_000)
    with pytest.raises(InvalidEvent):
        from_json(b"{" * 10_000)


def test_depth_is_bounded_by_the_limits() -> None:
    limits = EnvelopeLimits(max_depth=5)
    ok = {"a": {"b": {"c": [1]}}}  # envelope 1, data 2..5
    assert from_json(doc(data=ok), limits=limits).data == ok
    with pytest.raises(InvalidEvent, match="deeper than 5"):
        from_json(doc(data={"a": ok}), limits=limits)
    with pytest.raises(InvalidEvent, match="deeper than 64"):
        from_json(doc(data=_nest(64)))


def _nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_size_and_attribute_count_are_bounded() -> None:
    limits = EnvelopeLimits(max_bytes=200, max_attributes=8)
    with pytest.raises(InvalidEvent, match="larger than 200"):
        from_json(doc(data="x" * 200), limits=limits)
    with pytest.raises(InvalidEvent, match="at most 8 attributes"):
        from_json(doc(a1="1", a2="2"), limits=limits)
    assert from_json(doc(), limits=limits).id == BASE["id"]


def test_str_input_is_accepted() -> None:
    assert from_json(doc().decode()).id == BASE["id"]
    with pytest.raises(InvalidEvent, match="bytes or str"):
        from_json(5)  # type: ignore[arg-type]


def test_unserialisable_data_is_an_invalid_event() -> None:
    event = CloudEvent(id="1", source="/s", type="t", data={"x": object()})
    with pytest.raises(InvalidEvent, match="cannot be written as JSON"):
        to_json(event)


def test_batches_roundtrip_and_may_be_empty() -> None:
    events = [from_json(doc(id=str(i), data={"n": i})) for i in range(3)]
    assert from_json_batch(to_json_batch(events)) == events
    assert from_json_batch(b"[]") == []
    assert to_json_batch([]) == b"[]"


def test_a_bad_batch_names_the_event() -> None:
    body = b"[" + doc() + b"," + doc(id="") + b"]"
    with pytest.raises(InvalidEvent, match=r"event \[1\]: attribute 'id'"):
        from_json_batch(body)
    with pytest.raises(InvalidEvent, match="JSON array"):
        from_json_batch(doc())
    with pytest.raises(InvalidEvent, match="at most 2 events"):
        from_json_batch(
            b"[" + b",".join([doc()] * 3) + b"]", limits=EnvelopeLimits(max_batch_events=2)
        )
    with pytest.raises(InvalidEvent, match="larger than"):
        from_json_batch(b"[" + doc() + b"]", limits=EnvelopeLimits(max_batch_bytes=10))
