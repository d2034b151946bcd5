"""Dead letters: events a group gave up on, kept whole with why, and their replay.

A :class:`DeadLetter` keeps the raw message exactly as delivered (every
attribute and the data bytes, so even undecodable input can be inspected
and replayed), the reason, the error text (redacted through
:mod:`lms_shared.redaction`), how many deliveries were attempted, the
handler, the group, the trace id and when it died.

A :class:`DeadLetterStore` keeps them: :class:`MemoryDeadLetterStore` here
(tests, the test double), ``SqlDeadLetterStore`` in
:mod:`lms_shared.events.sql` (the service's database). :func:`replay_dead_letters`
publishes dead letters again at a bounded rate, addressed to their group
only (the ``replaygroup`` extension: every other group acks them unseen),
and removes each once the broker confirmed it.
"""

from __future__ import annotations

import base64
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from lms_shared.clock import Clock
from lms_shared.errors import LmsError
from lms_shared.events._errors import DeadLetterStoreUnavailable, PublishFailed
from lms_shared.events._trace import trace_id
from lms_shared.events._transport import Message, Transport
from lms_shared.redaction import Redactor

__all__ = [
    "REASONS",
    "REPLAY_GROUP",
    "DeadLetter",
    "DeadLetterQuery",
    "DeadLetterStore",
    "MemoryDeadLetterStore",
    "ReplayReport",
    "describe_error",
    "replay_dead_letters",
    "replay_message",
]

REPLAY_GROUP = "replaygroup"
"""The extension naming the only group a replayed dead letter is for."""

REASONS = (
    "handler-failed",
    "max-attempts",
    "expired",
    "invalid-event",
    "unknown-event-type",
    "unsupported-event-version",
    "invalid-event-data",
)
"""Why an event is dead: its handler kept failing (``handler-failed``); it
came back more often than allowed without a handler outcome, e.g. it crashed
the process (``max-attempts``); its ``deadline`` passed (``expired``); or it
could not be read (the problem codes of :class:`InvalidEvent` and the
:class:`EventSchemaError` family)."""

MAX_ERROR_CHARS = 4000
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event a group gave up on.

    Attributes:
        id: the letter's own id (not the event's).
        group: the subscription group that gave up.
        handler: the handler's qualified name; ``None`` when no handler was
            reached (the event could not be read).
        reason: one of :data:`REASONS`.
        error: what went wrong, redacted and at most 4000 characters.
        attempts: deliveries made (the last one included).
        message: the raw message, every attribute and the data bytes.
        trace_id: the trace id of the event's ``traceparent``, if any.
        dead_at: when it was dead-lettered.
    """

    id: str
    group: str
    handler: str | None
    reason: str
    error: str
    attempts: int
    message: Message
    trace_id: str | None
    dead_at: datetime

    @property
    def event_id(self) -> str:
        """The event's ``id``."""
        return self.message.id

    @property
    def event_type(self) -> str:
        """The event's ``type``."""
        return self.message.type

    @classmethod
    def create(
        cls,
        message: Message,
        *,
        group: str,
        handler: str | None,
        reason: str,
        error: str,
        attempts: int,
        now: datetime,
        redactor: Redactor,
    ) -> DeadLetter:
        """A new letter: a fresh id, the error redacted and cut, the trace id extracted."""
        text = redactor.redact_text(error)
        if len(text) > MAX_ERROR_CHARS:
            text = text[: MAX_ERROR_CHARS - 1] + "\u2026"
        return cls(
            id=uuid.uuid4().hex,
            group=group,
            handler=handler,
            reason=reason,
            error=text,
            attempts=attempts,
            message=message,
            trace_id=trace_id(message.attributes.get("traceparent")),
            dead_at=now.astimezone(UTC),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the data as base64), for the CLI and the admin API."""
        return {
            "id": self.id,
            "group": self.group,
            "handler": self.handler,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "trace_id": self.trace_id,
            "dead_at": self.dead_at.isoformat(),
            "attributes": dict(self.message.attributes),
            "data_base64": base64.b64encode(self.message.data).decode("ascii"),
        }


@dataclass(frozen=True, slots=True)
class DeadLetterQuery:
    """Which dead letters a listing, replay or purge is about (all given filters hold).

    Attributes:
        type: the event type.
        group: the group that gave up.
        reason: one of :data:`REASONS`.
        since: dead at or after this time.
        until: dead before this time.
        ids: only these letters.

    Raises:
        ValueError: a naive datetime, or ``since`` not before ``until``.
    """

    type: str | None = None
    group: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("since and until must be timezone-aware")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        if self.ids is not None:
            object.__setattr__(self, "ids", tuple(self.ids))

    @property
    def is_everything(self) -> bool:
        """No filter is set."""
        return all(
            value is None
            for value in (self.type, self.group, self.reason, self.since, self.until, self.ids)
        )

    def matches(self, letter: DeadLetter) -> bool:
        """Whether ``letter`` is one of the letters this query selects."""
        return (
            (self.type is None or letter.event_type == self.type)
            and (self.group is None or letter.group == self.group)
            and (self.reason is None or letter.reason == self.reason)
            and (self.since is None or letter.dead_at >= self.since)
            and (self.until is None or letter.dead_at < self.until)
            and (self.ids is None or letter.id in self.ids)
        )


@runtime_checkable
class DeadLetterStore(Protocol):
    """Where dead letters are kept until replayed or purged.

    Listings are oldest first (by ``dead_at``, then ``id``). Every method
    may raise its backend's unavailability error; the bus then leaves the
    event with the broker and retries later.
    """

    async def add(self, letter: DeadLetter) -> None:
        """Keep ``letter``."""
        ...

    async def get(self, letter_id: str) -> DeadLetter | None:
        """The letter with this id, or ``None``."""
        ...

    async def list(
        self, query: DeadLetterQuery = ..., *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """The letters ``query`` selects, oldest first, at most ``limit`` after ``offset``."""
        ...

    async def count(self, query: DeadLetterQuery = ...) -> int:
        """How many letters ``query`` selects."""
        ...

    async def delete(self, letter_ids: Sequence[str]) -> int:
        """Remove these letters; returns how many existed."""
        ...

    async def purge(self, query: DeadLetterQuery) -> int:
        """Remove every letter ``query`` selects; returns how many."""
        ...


_EVERYTHING = DeadLetterQuery()


class MemoryDeadLetterStore:
    """Dead letters in this process (tests, the test double, tools).

    Args:
        max_letters: the most letters kept; beyond it :meth:`add` raises
            :class:`DeadLetterStoreUnavailable`, so the bus leaves the event
            with the broker rather than dropping a letter.

    Attributes:
        letters: every letter, oldest first (read-only use).
    """

    def __init__(self, *, max_letters: int = 100_000) -> None:
        if max_letters < 1:
            raise ValueError("max_letters must be at least 1")
        self.max_letters = max_letters
        self._letters: dict[str, DeadLetter] = {}

    @property
    def letters(self) -> list[DeadLetter]:
        """Every letter, oldest first."""
        return sorted(self._letters.values(), key=lambda letter: (letter.dead_at, letter.id))

    async def add(self, letter: DeadLetter) -> None:
        """Keep ``letter``.

        Raises:
            DeadLetterStoreUnavailable: the store holds ``max_letters`` already.
        """
        if len(self._letters) >= self.max_letters and letter.id not in self._letters:
            raise DeadLetterStoreUnavailable(
                f"the memory dead-letter store is full ({self.max_letters} letters)"
            )
        self._letters[letter.id] = letter

    async def get(self, letter_id: str) -> DeadLetter | None:
        """The letter with this id, or ``None``."""
        return self._letters.get(letter_id)

    async def list(
        self, query: DeadLetterQuery = _EVERYTHING, *, limit: int = 100, offset: int = 0
    ) -> list[DeadLetter]:
        """The selected letters, oldest first."""
        _check_page(limit, offset)
        selected = [letter for letter in self.letters if query.matches(letter)]
        return selected[offset : offset + limit]

    async def count(self, query: DeadLetterQuery = _EVERYTHING) -> int:
        """How many letters ``query`` selects."""
        return sum(1 for letter in self._letters.values() if query.matches(letter))

    async def delete(self, letter_ids: Sequence[str]) -> int:
        """Remove these letters."""
        return sum(1 for i in set(letter_ids) if self._letters.pop(i, None) is not None)

    async def purge(self, query: DeadLetterQuery) -> int:
        """Remove every selected letter."""
        return await self.delete(
            [i for i, letter in self._letters.items() if query.matches(letter)]
        )


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= 10_000:
        raise ValueError("limit must be between 1 and 10000")
    if offset < 0:
        raise ValueError("offset must not be negative")


def describe_error(exc: BaseException, *, frames: int = 5) -> str:
    """``Type: message`` and the innermost ``frames`` frames (file, line, function; no locals)."""
    summary = traceback.extract_tb(exc.__traceback__)[-frames:]
    where = "".join(f"\n  at {frame.filename}:{frame.lineno} in {frame.name}" for frame in summary)
    return f"{type(exc).__qualname__}: {exc}{where}"


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a replay did (or, as a dry run, would do).

    Attributes:
        letters: the letters replayed (or selected, on a dry run), in order.
        dry_run: nothing was published or removed.
        error: why the replay stopped early (the broker refused), if it did;
            the letters not replayed are still in the store.
    """

    letters: list[DeadLetter] = field(default_factory=list)
    dry_run: bool = False
    error: str | None = None

    @property
    def count(self) -> int:
        """How many letters were replayed (or would be)."""
        return len(self.letters)


def replay_message(letter: DeadLetter) -> Message:
    """The message a replay publishes: the original, addressed to the letter's group.

    The ``deadline`` extension is dropped: replaying is the operator's
    decision that the event is still wanted.
    """
    attributes: Mapping[str, str] = {
        **{k: v for k, v in letter.message.attributes.items() if k != "deadline"},
        REPLAY_GROUP: letter.group,
    }
    return Message(attributes, letter.message.data)


async def replay_dead_letters(
    store: DeadLetterStore,
    transport: Transport,
    query: DeadLetterQuery = _EVERYTHING,
    *,
    clock: Clock,
    rate: float = 10.0,
    limit: int | None = None,
    dry_run: bool = False,
) -> ReplayReport:
    """Publish the selected dead letters again, oldest first, at most ``rate`` a second.

    Each letter is published on its own (addressed to its group through the
    ``replaygroup`` extension) and removed from the store once the broker
    confirmed it. Only letters dead before the replay began are replayed: a
    letter whose handler fails again comes back as a new letter, for the
    next replay. The pause between two publishes is taken on ``clock``.

    Args:
        store: where the letters are.
        transport: a started transport to publish through (unused on a dry run).
        query: which letters.
        clock: paces the replay and marks where it began.
        rate: letters per second (a bound, not a target).
        limit: replay at most this many.
        dry_run: only list what would be replayed.

    Raises:
        ValueError: ``rate`` is not positive or ``limit`` is below 1.
    """
    if not rate > 0:
        raise ValueError("rate must be positive")
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    # only letters dead when the replay began (and no more than were then)
    began = clock.now() + _TICK
    if query.since is not None and query.since >= began:
        return ReplayReport(dry_run=dry_run)
    query = replace(query, until=began if query.until is None else min(query.until, began))
    wanted = await store.count(query)
    if limit is not None:
        wanted = min(wanted, limit)
    if dry_run:
        selected: list[DeadLetter] = []
        while len(selected) < wanted:
            page = await store.list(
                query, limit=min(500, wanted - len(selected)), offset=len(selected)
            )
            if not page:
                break
            selected.extend(page)
        return ReplayReport(selected, dry_run=True)
    done: list[DeadLetter] = []
    pause = 1.0 / rate
    while len(done) < wanted:
        page = await store.list(query, limit=min(100, wanted - len(done)))
        if not page:
            break
        for letter in page:
            if done:
                await clock.sleep(pause)
            try:
                await transport.publish([replay_message(letter)])
            except PublishFailed as exc:
                return ReplayReport(done, error=exc.reason)
            try:
                await store.delete([letter.id])
            except LmsError as exc:  # published but still stored: replayed twice at worst
                return ReplayReport([*done, letter], error=str(exc))
            done.append(letter)
    return ReplayReport(done)
