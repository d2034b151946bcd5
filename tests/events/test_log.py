"""The embedded log beyond the conformance suite: processes, leases, order, history, bad rows.

Multi-process tests run real consumer processes (``_log_worker.py``) on
one file; every wait is bounded (``eventually``, ``wait_for``) and every
process is killed on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from lms_shared.clock import Clock
from lms_shared.errors import SettingsError
from lms_shared.events import (
    Delivery,
    EnvelopeLimits,
    InvalidEvent,
    Message,
    PublishFailed,
    SubscriptionSpec,
    TransportUnavailable,
)
from lms_shared.events._log import LogTransport, StoredEventUnreadable
from lms_shared.testing import ManualClock, capture_logs

from .conformance._support import Recorder, eventually, message

A = "lms.test.alpha"
WORKER = Path(__file__).with_name("_log_worker.py")


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[LogTransport]:
    transport = LogTransport.from_state_dir(tmp_path)
    await transport.start()
    yield transport
    await transport.stop()


class Worker:
    """A consumer process and the deliveries it recorded."""

    def __init__(self, process: asyncio.subprocess.Process, out: Path) -> None:
        self.process = process
        self.out = out

    def seen(self) -> list[tuple[str, int]]:
        if not self.out.exists():
            return []
        lines = self.out.read_text().splitlines()
        return [(i, int(a)) for i, a in (line.split() for line in lines if line.count(" ") == 1)]

    def ids(self) -> list[str]:
        return [i for i, _ in self.seen()]


@contextlib.asynccontextmanager
async def workers(path: Path, *configs: list[str]) -> AsyncIterator[list[Worker]]:
    """Start one consumer process per argument list; kill them all on the way out."""
    started: list[Worker] = []
    try:
        for n, extra in enumerate(configs):
            out = path.parent / f"worker-{n}.out"
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(WORKER), str(path), *extra[:2], str(out), *extra[2:],
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            started.append(Worker(process, out))
        for worker in started:
            assert worker.process.stdout is not None
            line = await asyncio.wait_for(worker.process.stdout.readline(), 30)
            if line.strip() != b"ready":
                assert worker.process.stderr is not None
                err = await asyncio.wait_for(worker.process.stderr.read(), 10)
                raise AssertionError(f"worker did not start: {line!r} {err.decode()[-2000:]}")
        yield started
    finally:
        for worker in started:
            if worker.process.returncode is None:
                worker.process.kill()
            await asyncio.wait_for(worker.process.wait(), 30)


# -- processes ----------------------------------------------------------------


async def test_two_processes_in_one_group_split_every_event(log: LogTransport) -> None:
    config = ["pool", A, "--concurrency", "4", "--pause", "0.001"]
    async with workers(log.path, config, config) as (first, second):
        batch = [message(A, str(i).encode()) for i in range(1000)]
        for start in range(0, len(batch), 50):
            await log.publish(batch[start : start + 50])
        await eventually(lambda: len(first.seen()) + len(second.seen()) >= 1000, timeout=60)
        one, two = first.ids(), second.ids()
    assert len(one) == len(set(one))
    assert len(two) == len(set(two))
    assert not set(one) & set(two)
    assert set(one) | set(two) == {m.id for m in batch}
    assert one  # both competed
    assert two
    assert {a for _, a in first.seen() + second.seen()} == {1}


async def test_a_killed_consumer_s_lease_goes_to_another_member(log: LogTransport) -> None:
    hold = ["crashy", A, "--mode", "hold", "--concurrency", "1", "--ack-wait", "1"]
    async with workers(log.path, hold) as (doomed,):
        sent = message(A, b'{"n": 1}')
        await log.publish([sent])
        await eventually(lambda: doomed.ids() == [sent.id], timeout=30)
        doomed.process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(doomed.process.wait(), 30)
        assert doomed.process.returncode == -signal.SIGKILL
    survivor = Recorder()
    await log.subscribe(SubscriptionSpec("crashy", (A,), ack_wait=1.0), survivor)
    await eventually(lambda: survivor.ids() == [sent.id], timeout=30)
    assert survivor.seen[0].attempt == 2
    assert survivor.seen[0].message.data == sent.data


async def test_a_group_is_durable_while_its_processes_are_down(tmp_path: Path) -> None:
    first = LogTransport.from_state_dir(tmp_path)
    await first.start()
    await first.subscribe(SubscriptionSpec("durable", (A,)), Recorder())
    await first.stop()
    publisher = LogTransport.from_state_dir(tmp_path)
    await publisher.start()
    batch = [message(A) for _ in range(3)]
    await publisher.publish(batch)
    await publisher.stop()
    again = LogTransport.from_state_dir(tmp_path)
    await again.start()
    try:
        received = Recorder()
        await again.subscribe(SubscriptionSpec("durable", (A,), concurrency=1), received)
        await eventually(lambda: len(received.seen) == 3)
        assert received.ids() == [m.id for m in batch]
    finally:
        await again.stop()


async def test_stop_gives_unsettled_deliveries_back_at_once(tmp_path: Path) -> None:
    holder = LogTransport.from_state_dir(tmp_path)
    await holder.start()
    holding = Recorder(ack=False)
    await holder.subscribe(SubscriptionSpec("handback", (A,), ack_wait=3600), holding)
    sent = message(A)
    await holder.publish([sent])
    await eventually(lambda: holding.ids() == [sent.id])
    other = LogTransport.from_state_dir(tmp_path)
    await other.start()
    try:
        held = Recorder()
        await other.subscribe(SubscriptionSpec("handback", (A,), ack_wait=3600), held)
        await holder.stop()  # an hour-long lease, released now
        await eventually(lambda: sent.id in held.ids())
    finally:
        await holder.stop()
        await other.stop()


# -- order per key --------------------------------------------------------------


async def test_a_key_is_not_handed_out_while_an_earlier_event_of_it_is_leased(
    log: LogTransport,
) -> None:
    held: list[Delivery] = []

    async def hold_first_of_key(delivery: Delivery) -> None:
        if delivery.message.key == "k1" and not held:
            held.append(delivery)  # left leased until the test acks it
            return
        await delivery.ack()

    received = Recorder(on_delivery=hold_first_of_key)
    await log.subscribe(SubscriptionSpec("keyed", (A,), concurrency=8), received)
    k1 = [message(A, str(i).encode(), partitionkey="k1") for i in range(3)]
    loose = message(A)
    await log.publish([k1[0], loose, k1[1], k1[2]])
    await eventually(lambda: set(received.ids()) == {k1[0].id, loose.id})
    control = message(A)
    await log.publish([control])  # a later claim ran past the key
    await eventually(lambda: control.id in received.ids())
    assert k1[1].id not in received.ids()
    await held[0].ack()
    await eventually(lambda: k1[2].id in received.ids())
    keyed = [i for i in received.ids() if i in {m.id for m in k1}]
    assert keyed == [m.id for m in k1]


# -- history ---------------------------------------------------------------------


async def test_rewind_from_the_start_and_from_a_position(log: LogTransport) -> None:
    received = Recorder()
    await log.subscribe(SubscriptionSpec("history", (A,), concurrency=1), received)
    batch = [message(A, str(i).encode()) for i in range(5)]
    await log.publish(batch)
    await eventually(lambda: len(received.seen) == 5)
    third = received.seen[2].position
    await log.rewind("history", [A])
    await eventually(lambda: len(received.seen) == 10)
    assert received.ids()[5:] == [m.id for m in batch]
    assert {d.attempt for d in received.seen[5:]} == {1}
    await log.rewind("history", [A], position=third)
    await eventually(lambda: len(received.seen) == 13)
    assert received.ids()[10:] == [m.id for m in batch[2:]]
    for bad in ("-1", "abc", "1" * 30, "\u0663"):
        with pytest.raises(ValueError, match="position"):
            await log.rewind("history", [A], position=bad)


async def test_retention_by_count_keeps_the_newest(tmp_path: Path) -> None:
    log = LogTransport.from_state_dir(tmp_path, max_rows=5)
    await log.start()
    try:
        received = Recorder()
        await log.subscribe(SubscriptionSpec("kept", (A,), concurrency=1), received)
        batch = [message(A, str(i).encode()) for i in range(12)]
        for event in batch:
            await log.publish([event])
        await eventually(lambda: len(received.seen) == 12)
        first = received.seen[0].position
        assert await log.trim() == 7
        assert await log.trim() == 0
        assert await log.read(first) is None
        await log.rewind("kept", [A])
        await eventually(lambda: len(received.seen) == 17)
        assert received.ids()[12:] == [m.id for m in batch[7:]]
    finally:
        await log.stop()


async def test_retention_by_age_drops_unacked_events_and_says_so(tmp_path: Path) -> None:
    clock = ManualClock()
    log = LogTransport.from_state_dir(
        tmp_path, clock=clock, max_age=3600, max_rows=None, retention_interval=1e9
    )
    await log.start()
    try:
        await log.subscribe(SubscriptionSpec("slow", (A,)), Recorder(ack=False))
        old = [message(A) for _ in range(3)]
        await log.publish(old)
        await clock.advance(7200)
        new = [message(A) for _ in range(2)]
        await log.publish(new)
        with capture_logs() as logs:
            assert await log.trim() == 3
        [warning] = logs.events("retention deleted events some groups had not acked")
        assert warning["unacked"] == 3
        retained = [await log.read(str(p)) for p in range(1, 6)]
        assert [m.id if m else None for m in retained] == [None] * 3 + [m.id for m in new]
    finally:
        await log.stop()


# -- bad rows and bad input -------------------------------------------------------------


def _insert_raw(path: Path, group: str, rows: list[tuple[object, object]]) -> list[int]:
    """Write rows behind the transport's back, as a corrupt file or another writer would."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        positions = []
        for attributes, data in rows:
            cursor = db.execute(
                "INSERT INTO lms_log_events (type, key, attributes, data, stored_at) "
                "VALUES (?, NULL, ?, ?, 0)",
                (A, attributes, data),
            )
            assert cursor.lastrowid is not None
            positions.append(cursor.lastrowid)
            db.execute(
                "INSERT INTO lms_log_pending (grp, position, type, key, attempt, visible_at) "
                "VALUES (?, ?, ?, NULL, 0, 0)",
                (group, cursor.lastrowid, A),
            )
        return positions


def _attributes(**extra: object) -> bytes:
    base = {"id": "x1", "source": "/t", "specversion": "1.0", "type": A}
    return orjson.dumps({**base, **extra})


async def test_corrupt_and_oversized_rows_are_rejected_not_fatal(tmp_path: Path) -> None:
    log = LogTransport.from_state_dir(tmp_path, limits=EnvelopeLimits(max_bytes=32_768))
    await log.start()
    try:
        received = Recorder()
        await log.subscribe(SubscriptionSpec("careful", (A,), concurrency=1), received)

        def nested(levels: int) -> bytes:
            return b'{"id": "x", "nested": ' + b"[" * levels + b"]" * levels + b"}"

        bad: list[tuple[object, object]] = [
            (b"\xff\xfe not json", b""),
            (_attributes(), b"x" * 40_000),
            (b'["not", "an", "object"]', b""),
            (nested(500), b""),
            (nested(10_000), b""),
            (orjson.dumps({"source": "/t", "specversion": "1.0", "type": A}), b""),
            (_attributes(time=5), b""),
            (12345, b""),
            (_attributes(), "text where bytes belong"),
        ]
        positions = _insert_raw(log.path, "careful", bad)
        good = message(A, b"fine")
        await log.publish([good])
        await eventually(lambda: received.ids() == [good.id])
        rejected = await log.rejected()
        assert sorted(int(r.position) for r in rejected) == positions
        assert {r.group for r in rejected} == {"careful"}
        reasons = {int(r.position): r.reason for r in rejected}
        assert "larger than 32768 bytes" in reasons[positions[1]]
        assert "nested deeper" in reasons[positions[3]]
        assert "malformed JSON" in reasons[positions[4]]  # orjson stops at 1,024 levels
        assert "'id'" in reasons[positions[5]]
        for position in positions:
            with pytest.raises(StoredEventUnreadable) as caught:
                await log.read(str(position))
            assert isinstance(caught.value, InvalidEvent)
            assert caught.value.position == position
        await log.ping()  # still serving
    finally:
        await log.stop()


async def test_an_oversized_publish_is_refused_whole(tmp_path: Path) -> None:
    log = LogTransport.from_state_dir(tmp_path, limits=EnvelopeLimits(max_bytes=2048))
    await log.start()
    try:
        received = Recorder()
        await log.subscribe(SubscriptionSpec("sizes", (A,)), received)
        small, big = message(A, b"ok"), message(A, b"x" * 4096)
        with pytest.raises(PublishFailed, match="larger than 2048"):
            await log.publish([small, big])
        many = Message({**dict(small.attributes), **{f"x{i}": "v" for i in range(70)}})
        with pytest.raises(PublishFailed, match="attributes"):
            await log.publish([many])
        control = message(A)
        await log.publish([control])
        await eventually(lambda: received.ids() == [control.id])
        assert await log.read("1") == control
    finally:
        await log.stop()


async def test_a_newer_schema_is_refused_at_start(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / "events.sqlite3")) as db:
        db.execute("PRAGMA user_version = 99")
    log = LogTransport.from_state_dir(tmp_path)
    with pytest.raises(TransportUnavailable, match="schema version 99"):
        await log.start()
    await log.stop()


async def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "events.sqlite3").write_bytes(b"definitely not sqlite" * 100)
    log = LogTransport.from_state_dir(tmp_path)
    with pytest.raises(TransportUnavailable):
        await log.start()


# -- configuration ------------------------------------------------------------------------


def test_from_url_defaults_to_the_state_folder(tmp_path: Path) -> None:
    assert LogTransport.from_url(None, state_dir=tmp_path).path == tmp_path / "events.sqlite3"
    assert LogTransport.from_url("sqlite://", state_dir=tmp_path).path == (
        tmp_path / "events.sqlite3"
    )
    named = LogTransport.from_url(
        f"sqlite:///{tmp_path}/x.db?max_rows=10&max_age=none&synchronous=FULL&poll_max=0.5"
    )
    assert named.path == tmp_path / "x.db"  # four slashes: absolute, as in SQLAlchemy
    assert (named.max_rows, named.max_age, named.poll_max) == (10, None, 0.5)
    assert LogTransport.from_url("sqlite:///.lms/e.sqlite3").path == Path(".lms/e.sqlite3")


def test_from_url_takes_the_transport_factory_s_options(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Options:
        clock: Clock
        state_dir: Path

    clock = ManualClock()
    made = LogTransport.from_url("sqlite://", Options(clock, tmp_path))
    assert made.path == tmp_path / "events.sqlite3"
    assert made.clock is clock


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("nats://localhost:4222", "sqlite://"),
        ("sqlite://host/events.db", "no host"),
        ("sqlite:///:memory:", "memory://"),
        ("sqlite:", "sqlite://"),
        ("sqlite:///tmp/e.db?=x&&", "cannot parse"),
        ("sqlite:///tmp/e.db?colour=blue", "unknown option colour="),
        ("sqlite:///tmp/e.db?max_rows=-3", "max_rows="),
        ("sqlite:///tmp/e.db?poll_min=fast", "poll_min="),
        ("sqlite:///tmp/e.db?synchronous=off", "synchronous="),
        ("sqlite:///tmp/e.db?poll_min=2&poll_max=1", "poll_min <= poll_max"),
        ("sqlite:///" + "x" * 5000, "longer than"),
    ],
)
def test_from_url_refuses_what_it_cannot_honour(url: str, why: str) -> None:
    with pytest.raises(SettingsError) as caught:
        LogTransport.from_url(url)
    assert caught.value.problems[0][0] == "LMS_EVENTS_URL"
    assert why in caught.value.problems[0][1]


def test_constructor_bounds() -> None:
    for bad in ({"max_age": 0}, {"max_rows": 0}, {"poll_min": 0}, {"busy_timeout": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LogTransport("/tmp/unused.sqlite3", **bad)  # type: ignore[arg-type]


async def test_retry_delays_run_on_the_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    log = LogTransport.from_state_dir(tmp_path, clock=clock)
    await log.start()
    try:
        first = message(A)

        async def retry_first(delivery: Delivery) -> None:
            if delivery.message.id == first.id and delivery.attempt == 1:
                await delivery.retry(60.0)
            else:
                await delivery.ack()

        received = Recorder(on_delivery=retry_first)
        await log.subscribe(SubscriptionSpec("later", (A,)), received)
        await log.publish([first])
        await eventually(lambda: len(received.seen) == 1)
        await clock.advance(59)
        control = message(A)
        await log.publish([control])
        await eventually(lambda: control.id in received.ids())
        assert received.ids() == [first.id, control.id]  # not due yet
        await clock.advance(2)
        await eventually(lambda: len(received.seen) == 3)
        assert received.ids()[2] == first.id
        assert received.seen[2].attempt == 2
    finally:
        await log.stop()


def test_the_log_imports_neither_sqlalchemy_nor_aiosqlite() -> None:
    probe = (
        "import sys, lms_shared.events._log; "
        "print(sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'aiosqlite'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
