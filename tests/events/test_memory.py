"""The memory transport on a ManualClock: redelivery and delays without waiting."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from lms_shared.events import (
    Delivery,
    InvalidEvent,
    MemoryTransport,
    Message,
    PublishFailed,
    SubscriptionSpec,
    TransportUnavailable,
)
from lms_shared.testing import ManualClock

from .conformance._support import Recorder, message

A = "lms.test.alpha"


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


@pytest.fixture
async def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def memory(clock: ManualClock) -> MemoryTransport:
    transport = MemoryTransport(clock)
    await transport.start()
    yield transport  # type: ignore[misc]
    await transport.stop()


async def test_ack_wait_runs_on_the_injected_clock(
    memory: MemoryTransport, clock: ManualClock
) -> None:
    received = Recorder(ack=False)
    await memory.subscribe(SubscriptionSpec("g", (A,), ack_wait=30.0), received)
    await memory.publish([message(A)])
    await settle()
    assert [d.attempt for d in received.seen] == [1]
    await clock.advance(29.9)
    assert len(received.seen) == 1
    await clock.advance(0.2)
    await settle()
    assert [d.attempt for d in received.seen] == [1, 2]
    assert 30.0 in clock.slept


async def test_retry_sleeps_its_delay_on_the_clock(
    memory: MemoryTransport, clock: ManualClock
) -> None:
    async def retry(delivery: Delivery) -> None:
        if delivery.attempt == 1:
            await delivery.retry(5.0)
            await delivery.ack()  # settled already: no effect
        else:
            await delivery.ack()

    received = Recorder(on_delivery=retry)
    await memory.subscribe(SubscriptionSpec("g", (A,)), received)
    await memory.publish([message(A)])
    await settle()
    await clock.advance(4.9)
    assert len(received.seen) == 1
    await clock.advance(0.2)
    await settle()
    assert [d.attempt for d in received.seen] == [1, 2]
    assert 5.0 in clock.slept


async def test_negative_retry_delay_is_refused(memory: MemoryTransport) -> None:
    errors: list[Exception] = []

    async def bad(delivery: Delivery) -> None:
        try:
            await delivery.retry(-1)
        except ValueError as exc:
            errors.append(exc)
            await delivery.ack()

    await memory.subscribe(SubscriptionSpec("g", (A,)), Recorder(on_delivery=bad))
    await memory.publish([message(A)])
    await settle()
    assert len(errors) == 1


async def test_events_wait_for_a_group_without_members(memory: MemoryTransport) -> None:
    spec = SubscriptionSpec("g", (A,))
    first = await memory.subscribe(spec, Recorder())
    await first.stop()
    queued = message(A)
    await memory.publish([queued])  # the group is durable: it keeps the event
    later = Recorder()
    await memory.subscribe(spec, later)
    await settle()
    assert later.ids() == [queued.id]


async def test_a_new_group_starts_at_the_end(memory: MemoryTransport) -> None:
    await memory.publish([message(A)])
    received = Recorder()
    await memory.subscribe(SubscriptionSpec("late", (A,)), received)
    await settle()
    assert received.seen == []
    await memory.rewind("late", [A])
    await settle()
    assert len(received.seen) == 1


async def test_unsettled_deliveries_survive_a_restart(clock: ManualClock) -> None:
    memory = MemoryTransport(clock)
    await memory.start()
    hanging = asyncio.Event()

    async def hang(delivery: Delivery) -> None:
        await hanging.wait()

    await memory.subscribe(SubscriptionSpec("g", (A,)), Recorder(on_delivery=hang))
    sent = message(A)
    await memory.publish([sent])
    await settle()
    await memory.stop()
    await memory.start()
    again = Recorder()
    await memory.subscribe(SubscriptionSpec("g", (A,)), again)
    await settle()
    assert again.ids() == [sent.id]
    assert again.seen[0].attempt == 2
    await memory.stop()


async def test_drain_gives_up_after_its_timeout(
    memory: MemoryTransport, clock: ManualClock
) -> None:
    cancelled = asyncio.Event()

    async def hang(delivery: Delivery) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    subscription = await memory.subscribe(SubscriptionSpec("g", (A,)), Recorder(on_delivery=hang))
    await memory.publish([message(A)])
    await settle()
    stopping = asyncio.create_task(subscription.stop(drain=True, timeout=5.0))
    await settle()
    assert not stopping.done()
    await clock.advance(5.0)
    await stopping
    assert cancelled.is_set()


async def test_an_outage_is_simulated(memory: MemoryTransport) -> None:
    memory.reachable = False
    with pytest.raises(PublishFailed, match="unreachable"):
        await memory.publish([message(A)])
    with pytest.raises(TransportUnavailable):
        await memory.subscribe(SubscriptionSpec("g", (A,)), Recorder())
    memory.reachable = True
    await memory.publish([message(A)])
    assert len(memory.published) == 1


async def test_history_is_bounded(clock: ManualClock) -> None:
    memory = MemoryTransport(clock, max_history=3)
    await memory.start()
    sent = [message(A) for _ in range(5)]
    await memory.publish(sent)
    assert [m.id for m in memory.published] == [m.id for m in sent[2:]]
    await memory.stop()
    with pytest.raises(ValueError, match="max_history"):
        MemoryTransport(clock, max_history=0)


async def test_rewind_since_uses_the_clock(memory: MemoryTransport, clock: ManualClock) -> None:
    received = Recorder()
    await memory.subscribe(SubscriptionSpec("g", (A,)), received)
    await memory.publish([message(A)])
    await clock.advance(10)
    later = message(A)
    await memory.publish([later])
    await settle()
    await memory.rewind("g", [A], since=clock.now() - timedelta(seconds=1))
    await settle()
    assert received.ids()[2:] == [later.id]
    with pytest.raises(ValueError, match="position"):
        await memory.rewind("g", [A], position="seq-1")


@pytest.mark.parametrize(
    ("attributes", "data", "reason"),
    [
        ({"source": "/s", "specversion": "1.0", "type": A}, b"", "'id'"),
        ({"id": "", "source": "/s", "specversion": "1.0", "type": A}, b"", "'id'"),
        ({"id": "1", "source": "/s", "specversion": "1.0", "type": A, "Bad": "x"}, b"", "Bad"),
        ({"id": "1", "source": "/s", "specversion": "1.0", "type": A, "n": 1}, b"", "'n'"),
        ({"id": "1", "source": "/s", "specversion": "1.0", "type": A}, "text", "bytes"),
    ],
)
def test_a_message_refuses_what_no_broker_could_carry(
    attributes: dict[str, object], data: object, reason: str
) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        Message(attributes, data)  # type: ignore[arg-type]


def test_a_message_is_read_only() -> None:
    sent = message(A, partitionkey="k")
    with pytest.raises(TypeError):
        sent.attributes["id"] = "other"  # type: ignore[index]
    assert (sent.type, sent.key) == (A, "k")


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"group": "Bad Group", "types": (A,)}, "group"),
        ({"group": "g", "types": ()}, "types"),
        ({"group": "g", "types": A}, "types"),
        ({"group": "g", "types": ("",)}, "type"),
        ({"group": "g", "types": (A,), "concurrency": 0}, "concurrency"),
        ({"group": "g", "types": (A,), "ack_wait": 0}, "ack_wait"),
    ],
)
def test_a_subscription_spec_is_checked(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        SubscriptionSpec(**kwargs)  # type: ignore[arg-type]


def test_a_subscription_spec_drops_duplicate_types() -> None:
    assert SubscriptionSpec("g", (A, A, "b")).types == (A, "b")
