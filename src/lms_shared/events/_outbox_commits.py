"""Which outbox rows a session's transaction committed, so the relay can publish them from memory.

SQLAlchemy's session events say when a transaction committed
(``after_commit``, after the database did; for a released savepoint too,
told apart by the outer transaction still being active) and when any
transaction rolled back, a savepoint included (``after_soft_rollback``). Rows written in a
transaction are handed over when it commits. Rows of a transaction in which
a savepoint rolled back after they were written are not: which of them
survived is the database's to say, so they are left to the table (the
store is told to read it). Rows of a transaction that rolled back are gone
with it. Ours because the outbox is: no library tracks this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from lms_shared.events._transport import Message

__all__ = ["CommitTracker", "Row", "committed_for_good"]

Row = tuple[int, Message]
"""An outbox row: its sequence number and the message it holds."""

_PENDING = "lms_outbox_pending"


@dataclass(slots=True)
class _Pending:
    """One tracker's rows in a session's current transaction."""

    rows: list[Row] = field(default_factory=list)
    wakers: list[Callable[[], None]] = field(default_factory=list)
    doubtful: bool = False  # a savepoint rolled back after rows were written


class CommitTracker:
    """Hands a store the rows of each committed transaction.

    Args:
        committed: called on commit with the transaction's rows, in order.
        doubt: called on commit when the rows are left to the table.
    """

    def __init__(self, committed: Callable[[list[Row]], None], doubt: Callable[[], None]) -> None:
        self.committed = committed
        self.doubt = doubt

    def track(self, session: Session, rows: list[Row], wake: Callable[[], None]) -> None:
        """Remember ``rows`` written in ``session``'s transaction; ``wake`` once it commits."""
        trackers: dict[CommitTracker, _Pending] | None = session.info.get(_PENDING)
        if trackers is None:
            trackers = session.info[_PENDING] = {}
            event.listen(session, "after_commit", _after_commit)
            event.listen(session, "after_soft_rollback", _after_soft_rollback)
        pending = trackers.get(self)
        if pending is None:
            pending = trackers[self] = _Pending()
        pending.rows.extend(rows)
        if wake not in pending.wakers:
            pending.wakers.append(wake)


def committed_for_good(session: Session) -> bool:
    """In an ``after_commit`` listener: whether the outermost transaction committed.

    SQLAlchemy calls ``after_commit`` for a released savepoint too; the
    outer transaction is then still active, and may yet roll back.
    """
    outer = session.get_transaction()
    return outer is None or not outer.is_active


def _after_commit(session: Session) -> None:
    if not committed_for_good(session):
        return
    trackers: dict[CommitTracker, _Pending] = session.info[_PENDING]
    for tracker, pending in list(trackers.items()):
        if not pending.rows and not pending.wakers:
            continue
        if pending.doubtful:
            tracker.doubt()
        elif pending.rows:
            tracker.committed(pending.rows)
        wakers = pending.wakers
        trackers[tracker] = _Pending()
        for wake in wakers:
            wake()


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    trackers: dict[CommitTracker, _Pending] = session.info[_PENDING]
    for tracker, pending in list(trackers.items()):
        if previous.nested:
            pending.doubtful = pending.doubtful or bool(pending.rows)
        else:  # the whole transaction: its rows are gone
            trackers[tracker] = _Pending()
