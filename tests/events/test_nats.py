"""NatsTransport beyond the conformance suite: the CloudEvents NATS binding, on
the wire and as pure functions, unreadable input, stream and consumer layout,
types, order per key, rewind that loses nothing, URLs.

The server tests run against the NATS JetStream on 127.0.0.1:4222 (skipped
when it is absent, failed under CI=true); each uses its own namespace and
deletes its stream afterwards.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from types import SimpleNamespace

import pytest

from lms_shared.events import (
    CloudEvent,
    Delivery,
    EnvelopeLimits,
    InvalidEvent,
    Message,
    PublishFailed,
    SubscriptionSpec,
    TransportUnavailable,
    to_json,
)
from lms_shared.events._nats import NatsTransport, consumer_name
from lms_shared.events._nats_binding import message_from_nats, nats_headers, subject_for

from .conformance import _nats as factories
from .conformance._support import Recorder, eventually, message

A = "lms.test.alpha"
B = "lms.test.beta"
C = "lms.test.gamma"

BASE = {"id": "e-1", "source": "/tests", "specversion": "1.0", "type": A}
MANY = {f"ce-x{i}": "v" for i in range(64)}
DEEP = b"[" * 100 + b"]" * 100


@pytest.fixture
def namespace() -> str:
    """A namespace (so a stream) no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


# -- the binding as pure functions ---------------------------------------------


def test_attributes_travel_as_percent_encoded_ce_headers() -> None:
    sent = Message(
        {**BASE, "subject": 'Euro \u20ac \U0001f600 "q" 100%', "datacontenttype": "text/plain"},
        b"data",
    )
    headers = nats_headers(sent)
    assert set(headers) == {f"ce-{name}" for name in sent.attributes}
    assert headers["ce-subject"] == "Euro%20%E2%82%AC%20%F0%9F%98%80%20%22q%22%20100%25"
    assert headers["ce-datacontenttype"] == "text/plain"  # NATS keeps it a ce- header
    assert all(v.isascii() and v.isprintable() and " " not in v for v in headers.values())
    back = message_from_nats(headers, b"data")
    assert dict(back.attributes) == dict(sent.attributes)
    assert back.data == b"data"


def test_header_names_are_case_insensitive_and_quoted_values_are_read() -> None:
    got = message_from_nats(
        {"CE-ID": "e-1", "Ce-Source": '"/a b"', "ce-SpecVersion": "1.0", "ce-type": "t%2Ex"}, b""
    )
    assert dict(got.attributes) == {
        "id": "e-1",
        "source": "/a b",
        "specversion": "1.0",
        "type": "t.x",
    }


def test_structured_mode_is_read_too() -> None:
    event = CloudEvent(id="s-1", source="/tests", type=A, data={"n": 1})
    got = message_from_nats(
        {"Content-Type": "application/cloudevents+json; charset=utf-8"}, to_json(event)
    )
    assert got.id == "s-1"
    assert got.type == A
    assert json.loads(got.data) == {"n": 1}


def test_content_type_stands_in_for_a_missing_ce_datacontenttype() -> None:
    headers = {f"ce-{k}": v for k, v in BASE.items()} | {"Content-Type": "application/json"}
    assert message_from_nats(headers, b"{}").attributes["datacontenttype"] == "application/json"


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        (None, b"\x00\xffgarbage", "no ce-specversion"),
        ({"Nats-Msg-Id": "x"}, b"{}", "no ce-specversion"),
        ({"content-type": "application/cloudevents-batch+json"}, b"[]", "batch"),
        ({"content-type": "application/cloudevents+xml"}, b"<x/>", "only JSON"),
        (
            {"content-type": "application/cloudevents+json"},
            b"[" * 100 + b"]" * 100,
            "deep|depth|nest|level",
        ),
        ({"ce-id": "1", "CE-ID": "2"}, b"", "more than once"),
        ({**{f"ce-{k}": v for k, v in BASE.items()}, "ce-subject": "%G1"}, b"", "percent"),
        ({**{f"ce-{k}": v for k, v in BASE.items()}, "ce-subject": "%C0%A0"}, b"", "UTF-8"),
        ({**{f"ce-{k}": v for k, v in BASE.items()}, "ce-bad_name": "x"}, b"", "a-z0-9"),
        ({"ce-specversion": "1.0", "ce-source": "/x", "ce-type": A}, b"", "'id'"),
        ({f"ce-{k}": v for k, v in BASE.items()}, b"x" * 2000, "larger than"),
        ({f"x-{i}": "v" for i in range(200)}, b"", "headers"),
        (
            {f"ce-{k}": v for k, v in BASE.items()} | {f"ce-x{i}": "v" for i in range(64)},
            b"",
            "at most",
        ),
    ],
)
def test_what_cannot_be_a_message_is_a_typed_error(
    headers: dict[str, str] | None, body: bytes, reason: str
) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        message_from_nats(headers, body, limits=EnvelopeLimits(max_bytes=1024))


def test_every_type_is_one_valid_subject_of_its_own() -> None:
    assert subject_for("lms.events", "lms.course.published") == "lms.events.lms.course.published"
    types = ["a b", "a*b", "a>b", "a..b", ".a", "a.", "a%2Eb", "a.b", "\u00fc", "a%b", "a\tb"]
    subjects = [subject_for("p", t) for t in types]
    assert len(set(subjects)) == len(types)
    for subject in subjects:
        tokens = subject.split(".")
        assert all(tokens), subject
        assert not any(c.isspace() or c in "*>" for c in subject), subject
        assert subject.isascii()


# -- construction and URLs ---------------------------------------------------------


def test_from_url_reads_servers_credentials_and_options() -> None:
    t = NatsTransport.from_url(
        "nats://user:pw@h1:4222,h2:4223?namespace=courses&replicas=3&max_age=60&name=svc"
    )
    assert t.servers == ["nats://user:pw@h1:4222", "nats://user:pw@h2:4223"]
    assert (t.namespace, t.stream, t.prefix) == ("courses", "courses-events", "courses.events")
    assert (t.replicas, t.max_age, t.client_name) == (3, 60.0, "svc")
    assert NatsTransport.from_url("tls://h:4222", namespace="x").servers == ["tls://h:4222"]
    assert NatsTransport.from_url("nats://h?namespace=a", namespace="b").namespace == "b"
    # the transport factory passes its options (their namespace) positionally
    factory_options = SimpleNamespace(namespace="c")
    assert NatsTransport.from_url("nats://h", factory_options).namespace == "c"
    assert NatsTransport.from_url("nats://h?namespace=a", factory_options).namespace == "a"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("redis://h:6379", "nats://"),
        ("nats://", "at least one host"),
        ("nats://h?bogus=1", "unknown"),
        ("nats://h?replicas=many", "numbers"),
        ("nats://h?namespace=Bad", "namespace"),
        ("nats://h?replicas=9", "replicas"),
    ],
)
def test_from_url_refuses_what_it_cannot_use(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NatsTransport.from_url(url)


@pytest.mark.parametrize(
    "kwargs",
    [{"pull_expires": 0}, {"publish_timeout": float("inf")}, {"max_deliver": 0}, {"max_age": -1}],
)
def test_out_of_range_options_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        NatsTransport(**kwargs)  # type: ignore[arg-type]


async def test_nothing_works_before_start() -> None:
    idle = NatsTransport(namespace="idle")
    with pytest.raises(TransportUnavailable):
        await idle.ping()
    with pytest.raises(PublishFailed):
        await idle.publish([message(A)])
    with pytest.raises(TransportUnavailable):
        await idle.subscribe(SubscriptionSpec("g", (A,)), Recorder())
    with pytest.raises(TransportUnavailable):
        await idle.rewind("g", [A])
    await idle.stop()


# -- against the server ------------------------------------------------------------


@pytest.fixture
async def nats_transport(namespace: str) -> AsyncIterator[NatsTransport]:
    async with factories.transport(namespace) as started:
        assert isinstance(started, NatsTransport)
        yield started


@pytest.fixture
async def raw(nats_transport: NatsTransport) -> AsyncIterator[object]:
    import nats

    nc = await nats.connect(factories.NATS_URL, connect_timeout=2, max_reconnect_attempts=1)
    try:
        yield nc.jetstream(timeout=5)
    finally:
        await nc.close()


async def test_the_stream_and_consumer_layout(nats_transport: NatsTransport, raw: object) -> None:
    from nats.js import JetStreamContext
    from nats.js.api import AckPolicy, DeliverPolicy, RetentionPolicy

    assert isinstance(raw, JetStreamContext)
    stream = await raw.stream_info(nats_transport.stream)
    assert stream.config.subjects == [f"{nats_transport.prefix}.>"]
    assert stream.config.retention == RetentionPolicy.LIMITS
    assert stream.config.max_msg_size == nats_transport.limits.max_bytes
    assert stream.config.num_replicas == 1
    await nats_transport.subscribe(SubscriptionSpec("grading", (A,), ack_wait=7.0), Recorder())
    name = consumer_name("grading", [A])
    info = await raw.consumer_info(nats_transport.stream, name)
    assert info.config.durable_name == name
    assert info.config.ack_policy == AckPolicy.EXPLICIT
    assert info.config.deliver_policy == DeliverPolicy.NEW
    assert info.config.filter_subject == subject_for(nats_transport.prefix, A)
    assert info.config.ack_wait == 7.0
    assert json.loads(info.config.description or "") == {
        "lms": "events",
        "group": "grading",
        "types": [A],
    }
    assert consumer_name("a.b", [A, B]) == consumer_name("a.b", [B, A])
    assert consumer_name("a.b", [A]) != consumer_name("a_b", [A])


async def test_the_wire_format_is_binary_mode(nats_transport: NatsTransport, raw: object) -> None:
    from nats.js import JetStreamContext

    assert isinstance(raw, JetStreamContext)
    sent = message(A, b'{"n": 1}', subject="caf\u00e9 42", partitionkey="k")
    await nats_transport.publish([sent])
    stored = await raw.get_last_msg(nats_transport.stream, subject_for(nats_transport.prefix, A))
    assert stored.data == b'{"n": 1}'
    headers = stored.headers or {}
    assert headers["ce-id"] == sent.id
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-type"] == A
    assert headers["ce-datacontenttype"] == "application/json"
    assert headers["ce-subject"] == "caf%C3%A9%2042"
    assert headers["ce-partitionkey"] == "k"


async def test_events_other_clients_publish_are_delivered(
    nats_transport: NatsTransport, raw: object
) -> None:
    from nats.js import JetStreamContext

    assert isinstance(raw, JetStreamContext)
    received = Recorder()
    await nats_transport.subscribe(SubscriptionSpec("interop", (A,), concurrency=1), received)
    subject = subject_for(nats_transport.prefix, A)
    structured = CloudEvent(id="s-1", source="/other", type=A, data={"n": 1})
    await raw.publish(
        subject, to_json(structured), headers={"Content-Type": "application/cloudevents+json"}
    )
    await raw.publish(
        subject,
        b"plain",
        headers={"ce-id": "b-1", "ce-source": "/other", "ce-specversion": "1.0", "ce-type": A},
    )
    await eventually(lambda: len(received.seen) == 2)
    assert received.ids() == ["s-1", "b-1"]
    assert received.seen[1].message.data == b"plain"


async def test_unreadable_messages_are_terminated_and_the_consumer_goes_on(
    namespace: str, raw: object, nats_transport: NatsTransport
) -> None:
    from nats.js import JetStreamContext

    assert isinstance(raw, JetStreamContext)
    # a reader with smaller bounds than the stream (created with the default 1 MiB)
    reader = NatsTransport(
        factories.NATS_URL, namespace=namespace, limits=EnvelopeLimits(max_bytes=4096)
    )
    await reader.start()
    try:
        received = Recorder()
        spec = SubscriptionSpec("poison", (A,), concurrency=1, ack_wait=1.0)
        await reader.subscribe(spec, received)
        subject = subject_for(nats_transport.prefix, A)
        valid = {"ce-source": "/x", "ce-specversion": "1.0", "ce-type": A}
        await raw.publish(subject, b"\x00\xff garbage without headers")
        await raw.publish(subject, b"", headers={**valid, "ce-id": "1", "ce-subject": "%ZZ"})
        await raw.publish(subject, b"{", headers={"content-type": "application/cloudevents+json"})
        await raw.publish(subject, b"x" * 200_000, headers={**valid, "ce-id": "big"})
        after = message(A)
        await nats_transport.publish([after])
        await eventually(lambda: received.ids() == [after.id])
        name = consumer_name("poison", [A])
        deadline = asyncio.get_running_loop().time() + 10
        while (info := await raw.consumer_info(nats_transport.stream, name)).num_ack_pending:
            assert asyncio.get_running_loop().time() < deadline, "terminated messages pending"
            await asyncio.sleep(0.05)
        assert reader.unreadable == 4
        assert info.num_redelivered == 0
        assert info.num_pending == 0
        assert received.ids() == [after.id]
    finally:
        await reader.stop()


async def test_publish_bounds_are_the_limits_and_the_streams(namespace: str) -> None:
    factories.require_server("NATS JetStream", "127.0.0.1", 4222)
    small = NatsTransport(
        factories.NATS_URL, namespace=namespace, limits=EnvelopeLimits(max_bytes=1024)
    )
    await small.start()  # creates the stream: max_msg_size 1024
    large = NatsTransport(factories.NATS_URL, namespace=namespace)
    await large.start()
    try:
        received = Recorder()
        await small.subscribe(SubscriptionSpec("small", (A,)), received)
        with pytest.raises(InvalidEvent, match="larger than 1024"):
            await small.publish([message(A), message(A, b"x" * 2000)])  # nothing sent
        with pytest.raises(PublishFailed, match="refused"):
            await large.publish([message(A, b"x" * 2000)])  # the stream refuses it
        fits = message(A, b"x" * 100)
        await small.publish([fits])
        await eventually(lambda: received.ids() == [fits.id])
    finally:
        await large.stop()
        await small.stop()
        await factories.delete_stream(small.stream)


async def test_publish_and_ping_fail_typed_when_the_stream_is_gone(
    nats_transport: NatsTransport, raw: object
) -> None:
    from nats.js import JetStreamContext

    assert isinstance(raw, JetStreamContext)
    await raw.delete_stream(nats_transport.stream)
    with pytest.raises(PublishFailed):
        await nats_transport.publish([message(A)])
    with pytest.raises(TransportUnavailable):
        await nats_transport.ping()


async def test_a_subscription_of_several_types_gets_only_those(
    nats_transport: NatsTransport, raw: object
) -> None:
    from nats.js import JetStreamContext

    assert isinstance(raw, JetStreamContext)
    received = Recorder()
    await nats_transport.subscribe(SubscriptionSpec("two", (A, B), concurrency=1), received)
    a, b, c = message(A), message(B), message(C)
    await nats_transport.publish([a, c, b])
    await eventually(lambda: len(received.seen) == 2)
    assert received.ids() == [a.id, b.id]
    info = await raw.consumer_info(nats_transport.stream, consumer_name("two", [A, B]))
    if nats_transport._multi_filter:
        assert sorted(info.config.filter_subjects or []) == sorted(
            subject_for(nats_transport.prefix, t) for t in (A, B)
        )
    else:  # before 2.10: one filter for the namespace, the other types acked unseen
        assert info.config.filter_subject == f"{nats_transport.prefix}.>"
    deadline = asyncio.get_running_loop().time() + 10
    while (await raw.consumer_info(nats_transport.stream, info.name)).num_ack_pending:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert received.ids() == [a.id, b.id]


async def test_one_key_is_handled_in_order_while_other_keys_go_on(
    nats_transport: NatsTransport,
) -> None:
    order: list[str] = []
    second_k2_done = asyncio.Event()
    running: set[str] = set()
    overlap: list[str] = []

    first_k1, k2_a, k2_b, second_k1 = (
        message(A, b"1", partitionkey="k1"),
        message(A, b"2", partitionkey="k2"),
        message(A, b"3", partitionkey="k2"),
        message(A, b"4", partitionkey="k1"),
    )

    async def handle(delivery: Delivery) -> None:
        key = delivery.message.key or ""
        if key in running:
            overlap.append(key)
        running.add(key)
        try:
            if delivery.message.id == first_k1.id:
                # k1 waits for k2's second event: only possible if k2 is not held behind k1
                await asyncio.wait_for(second_k2_done.wait(), 10)
            order.append(delivery.message.id)
            if delivery.message.id == k2_b.id:
                second_k2_done.set()
            await delivery.ack()
        finally:
            running.discard(key)

    await nats_transport.subscribe(
        SubscriptionSpec("keys", (A,), concurrency=8), Recorder(on_delivery=handle)
    )
    await nats_transport.publish([first_k1, k2_a, k2_b, second_k1])
    await eventually(lambda: len(order) == 4)
    assert order.index(k2_a.id) < order.index(k2_b.id) < order.index(first_k1.id)
    assert order.index(first_k1.id) < order.index(second_k1.id)
    assert overlap == []


async def test_a_group_keeps_its_position_while_no_member_runs(
    nats_transport: NatsTransport, raw: object
) -> None:
    from nats.js import JetStreamContext

    assert isinstance(raw, JetStreamContext)
    first = Recorder()
    sub = await nats_transport.subscribe(SubscriptionSpec("away", (A,), ack_wait=30.0), first)
    await sub.stop()
    missed = [message(A), message(A)]
    await nats_transport.publish(missed)
    back = Recorder()
    await nats_transport.subscribe(SubscriptionSpec("away", (A,), ack_wait=5.0), back)
    await eventually(lambda: len(back.seen) == 2)
    assert back.ids() == [m.id for m in missed]
    info = await raw.consumer_info(nats_transport.stream, consumer_name("away", [A]))
    assert info.config.ack_wait == 5.0


async def test_rewind_never_skips_events_still_unacknowledged(
    nats_transport: NatsTransport,
) -> None:
    held = message(A)
    rest = [message(A) for _ in range(3)]

    async def hold_one(delivery: Delivery) -> None:
        if delivery.message.id != held.id:
            await delivery.ack()

    first = Recorder(on_delivery=hold_one)
    spec = SubscriptionSpec("owed", (A,), concurrency=4, ack_wait=60.0)
    sub = await nats_transport.subscribe(spec, first)
    await nats_transport.publish([held, *rest])
    await eventually(lambda: len(first.seen) == 4)
    last = next(d for d in first.seen if d.message.id == rest[-1].id)
    await sub.stop()
    # asked from the last event on; the held one comes before it and is owed
    await nats_transport.rewind("owed", [A], position=last.position)
    again = Recorder()
    await nats_transport.subscribe(spec, again)
    await eventually(lambda: held.id in again.ids() and rest[-1].id in again.ids())


async def test_rewind_of_a_group_without_consumer_prepares_it(
    nats_transport: NatsTransport,
) -> None:
    early = [message(A) for _ in range(3)]
    await nats_transport.publish(early)
    await nats_transport.rewind("newcomer", [A])  # from the oldest retained
    received = Recorder()
    await nats_transport.subscribe(SubscriptionSpec("newcomer", (A,), concurrency=1), received)
    await eventually(lambda: len(received.seen) == 3)
    assert received.ids() == [m.id for m in early]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"position": "abc"}, "sequence"),
        ({"position": "0"}, "sequence"),
        ({"since": datetime(2026, 1, 1)}, "timezone"),
    ],
)
async def test_rewind_refuses_bad_points(
    nats_transport: NatsTransport, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        await nats_transport.rewind("g", [A], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="types"):
        await nats_transport.rewind("g", [])


async def test_start_is_idempotent_and_stop_ends_ping(nats_transport: NatsTransport) -> None:
    await nats_transport.start()
    await nats_transport.ping()
    await nats_transport.stop()
    await nats_transport.stop()
    with pytest.raises(TransportUnavailable):
        await nats_transport.ping()
