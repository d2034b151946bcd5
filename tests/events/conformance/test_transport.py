"""The transport contract, run against every backend in ``FACTORIES``.

Every wait is a bounded poll (``eventually``); absence ("not delivered
again") is checked against a control that proves enough time has passed,
never with a fixed sleep.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from lms_shared.events import (
    Delivery,
    PublishFailed,
    ReplayUnsupported,
    SubscriptionSpec,
    Transport,
    TransportUnavailable,
)

from ._support import Backend, Recorder, eventually, message

A = "lms.test.alpha"
B = "lms.test.beta"


async def test_roundtrip_preserves_attributes_and_bytes(transport: Transport) -> None:
    received = Recorder()
    await transport.subscribe(SubscriptionSpec("roundtrip", (A,)), received)
    sent = message(
        A,
        bytes(range(256)),
        time="2026-01-02T03:04:05.123456Z",
        subject='courses/42 \u2022 \u00fcn\u00efcode "quoted" 100%',
        partitionkey="course-42",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate="congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        schemaversion="3",
        datacontenttype="application/octet-stream",
    )
    empty = message(A, b"")
    await transport.publish([sent, empty])
    await eventually(lambda: len(received.seen) == 2)
    by_id = {d.message.id: d for d in received.seen}
    got = by_id[sent.id]
    assert dict(got.message.attributes) == dict(sent.attributes)
    assert got.message.data == sent.data
    assert got.message.key == "course-42"
    assert got.attempt == 1
    assert got.position
    assert by_id[empty.id].message.data == b""
    assert by_id[empty.id].message.key is None


async def test_batch_is_delivered_in_publish_order(transport: Transport) -> None:
    received = Recorder()
    await transport.subscribe(SubscriptionSpec("ordered", (A,), concurrency=1), received)
    batch = [message(A, str(i).encode()) for i in range(20)]
    await transport.publish(batch)
    await eventually(lambda: len(received.seen) == 20)
    assert received.ids() == [m.id for m in batch]
    positions = [d.position for d in received.seen]
    assert len(set(positions)) == 20


async def test_competing_consumers_split_the_events(transport: Transport) -> None:
    release = asyncio.Event()

    async def hold(delivery: Delivery) -> None:
        await release.wait()
        await delivery.ack()

    first, second = Recorder(on_delivery=hold), Recorder(on_delivery=hold)
    spec = SubscriptionSpec("workers", (A,), concurrency=1)
    await transport.subscribe(spec, first)
    await transport.subscribe(spec, second)
    batch = [message(A) for _ in range(10)]
    await transport.publish(batch)
    # each member holds one unsettled delivery and prefetches nothing more,
    # so the second event must go to the other member
    await eventually(lambda: len(first.seen) == 1 and len(second.seen) == 1)
    release.set()
    await eventually(lambda: len(first.seen) + len(second.seen) == 10)
    ids = first.ids() + second.ids()
    assert sorted(ids) == sorted(m.id for m in batch)


async def test_every_group_gets_every_event(transport: Transport) -> None:
    grading, reports = Recorder(), Recorder()
    await transport.subscribe(SubscriptionSpec("grading", (A,)), grading)
    await transport.subscribe(SubscriptionSpec("reports", (A,)), reports)
    batch = [message(A) for _ in range(5)]
    await transport.publish(batch)
    await eventually(lambda: len(grading.seen) == 5 and len(reports.seen) == 5)
    assert sorted(grading.ids()) == sorted(reports.ids()) == sorted(m.id for m in batch)


async def test_a_subscription_gets_only_its_types(transport: Transport) -> None:
    only_a, witness = Recorder(), Recorder()
    await transport.subscribe(SubscriptionSpec("only-a", (A,), concurrency=1), only_a)
    await transport.subscribe(SubscriptionSpec("witness", (A, B), concurrency=1), witness)
    b_first, a_last = message(B), message(A)
    await transport.publish([b_first, a_last])
    await eventually(lambda: len(witness.seen) == 2 and len(only_a.seen) == 1)
    assert only_a.ids() == [a_last.id]
    assert witness.ids() == [b_first.id, a_last.id]


async def test_acked_is_not_delivered_again(transport: Transport) -> None:
    acked, control = message(A), message(A)

    async def ack_one(delivery: Delivery) -> None:
        if delivery.message.id == acked.id:
            await delivery.ack()  # the control is left unsettled

    received = Recorder(on_delivery=ack_one)
    await transport.subscribe(SubscriptionSpec("acks", (A,), ack_wait=1.0), received)
    await transport.publish([acked, control])
    # the control's redelivery proves ack_wait has passed for both
    await eventually(lambda: received.ids().count(control.id) >= 2)
    assert received.ids().count(acked.id) == 1
    redelivered = [d for d in received.seen if d.message.id == control.id]
    assert [d.attempt for d in redelivered[:2]] == [1, 2]


async def test_retry_redelivers_after_its_delay_with_the_next_attempt(
    transport: Transport,
) -> None:
    slow, quick = message(A), message(A)
    delays = {slow.id: 2.0, quick.id: 0.2}

    async def retry_twice(delivery: Delivery) -> None:
        if delivery.attempt < 3:
            await delivery.retry(delays[delivery.message.id] if delivery.attempt == 1 else 0.1)
        else:
            await delivery.ack()

    received = Recorder(on_delivery=retry_twice)
    await transport.subscribe(SubscriptionSpec("retries", (A,), ack_wait=30.0), received)
    await transport.publish([slow, quick])
    await eventually(lambda: received.ids().count(quick.id) >= 2)
    # the slow one waits ten times longer: it cannot be back yet
    assert received.ids().count(slow.id) == 1
    await eventually(lambda: received.ids().count(slow.id) == 3)
    await eventually(lambda: received.ids().count(quick.id) == 3)
    for event in (slow, quick):
        attempts = [d.attempt for d in received.seen if d.message.id == event.id]
        assert attempts == [1, 2, 3]
    assert all(d.message.data == slow.data for d in received.seen)


async def test_a_raising_handler_is_redelivered_after_ack_wait(transport: Transport) -> None:
    async def fail_first(delivery: Delivery) -> None:
        if delivery.attempt == 1:
            raise RuntimeError("handler crashed")
        await delivery.ack()

    received = Recorder(on_delivery=fail_first)
    await transport.subscribe(SubscriptionSpec("crashes", (A,), ack_wait=1.0), received)
    sent = message(A, b'{"n": 1}')
    await transport.publish([sent])
    await eventually(lambda: len(received.seen) == 2)
    first, again = received.seen
    assert again.attempt == 2
    assert again.message.attributes == first.message.attributes
    assert again.message.data == sent.data


async def test_concurrency_limits_handlers_in_flight(transport: Transport) -> None:
    in_flight = 0
    most = 0
    done = 0
    gate = asyncio.Semaphore(0)

    async def held(delivery: Delivery) -> None:
        nonlocal in_flight, most, done
        in_flight += 1
        most = max(most, in_flight)
        try:
            await gate.acquire()
            await delivery.ack()
        finally:
            in_flight -= 1
            done += 1

    await transport.subscribe(
        SubscriptionSpec("limited", (A,), concurrency=3), Recorder(on_delivery=held)
    )
    await transport.publish([message(A) for _ in range(10)])
    await eventually(lambda: in_flight == 3)
    for _ in range(10):
        gate.release()
    await eventually(lambda: done == 10)
    assert most == 3


async def test_stop_with_drain_waits_for_handlers_in_flight(transport: Transport) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def slow(delivery: Delivery) -> None:
        started.set()
        await release.wait()
        await delivery.ack()
        finished.append(delivery.message.id)

    subscription = await transport.subscribe(
        SubscriptionSpec("drain", (A,)), Recorder(on_delivery=slow)
    )
    sent = message(A)
    await transport.publish([sent])
    await asyncio.wait_for(started.wait(), 10)

    async def release_later() -> None:
        await asyncio.sleep(0.2)  # ordering, not timing: stop() is already waiting
        release.set()

    releaser = asyncio.create_task(release_later())
    await subscription.stop(drain=True, timeout=10)
    assert finished == [sent.id]
    await releaser


async def test_stop_without_drain_leaves_the_delivery_for_another_member(
    transport: Transport,
) -> None:
    stuck = asyncio.Event()

    async def hang(delivery: Delivery) -> None:
        stuck.set()
        await asyncio.Event().wait()

    spec = SubscriptionSpec("handover", (A,), ack_wait=1.0)
    first = await transport.subscribe(spec, Recorder(on_delivery=hang))
    sent = message(A)
    await transport.publish([sent])
    await asyncio.wait_for(stuck.wait(), 10)
    await first.stop(drain=False)
    second = Recorder()
    await transport.subscribe(spec, second)
    await eventually(lambda: second.ids() == [sent.id])
    assert second.seen[0].attempt >= 2


async def test_rewind_since_a_time_and_from_a_position(transport: Transport) -> None:
    received = Recorder()
    spec = SubscriptionSpec("replays", (A,), concurrency=1)
    if not transport.keeps_history:
        with pytest.raises(ReplayUnsupported):
            await transport.rewind("replays", [A], since=datetime.now(UTC))
        return
    await transport.subscribe(spec, received)
    early = [message(A) for _ in range(3)]
    await transport.publish(early)
    await eventually(lambda: len(received.seen) == 3)
    second_position = received.seen[1].position
    mark = datetime.now(UTC)
    await asyncio.sleep(0.05)  # broker timestamps of the two batches must differ
    late = [message(A) for _ in range(2)]
    await transport.publish(late)
    await eventually(lambda: len(received.seen) == 5)

    await transport.rewind("replays", [A], since=mark)
    await eventually(lambda: len(received.seen) == 7)
    assert received.ids()[5:] == [m.id for m in late]

    await transport.rewind("replays", [A], position=second_position)
    await eventually(lambda: len(received.seen) == 11)
    assert received.ids()[7:] == [m.id for m in early[1:] + late]


async def test_rewind_rejects_two_starting_points(transport: Transport) -> None:
    if not transport.keeps_history:
        pytest.skip("the transport keeps no history")
    with pytest.raises(ValueError, match="not both"):
        await transport.rewind("replays", [A], since=datetime.now(UTC), position="1")


async def test_publish_after_stop_fails(transport: Transport) -> None:
    await transport.stop()
    with pytest.raises(PublishFailed):
        await transport.publish([message(A)])
    await transport.stop()  # stopping twice is fine


async def test_an_unreachable_broker_is_reported(
    backend_under_test: Backend, namespace: str
) -> None:
    async with backend_under_test.unreachable(namespace) as down:
        with pytest.raises(TransportUnavailable):
            await down.start()
        with pytest.raises(TransportUnavailable):
            await down.ping()
        with pytest.raises(PublishFailed):
            await down.publish([message(A)])


async def test_ping_answers_when_started(transport: Transport) -> None:
    await transport.ping()


async def test_a_thousand_events_are_each_consumed_once(transport: Transport) -> None:
    received = Recorder()
    spec = SubscriptionSpec("bulk", (A,), concurrency=32)
    await transport.subscribe(spec, received)
    await transport.subscribe(spec, received)
    batch = [message(A, str(i).encode()) for i in range(1000)]
    await transport.publish(batch)
    await eventually(lambda: len(received.seen) >= 1000, timeout=30)
    assert sorted(received.ids()) == sorted(m.id for m in batch)
    assert {d.attempt for d in received.seen} == {1}
