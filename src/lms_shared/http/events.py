"""The dead-letter queue over HTTP: list, show, replay and purge, for admins.

::

    service.include(dead_letter_router(service.events))   # /admin/events/dead-letters

Every route needs ``events:admin`` (the ``admin`` role has it). The same
operations as ``lms-shared events dlq``; a replay through the API is
bounded (``limit`` at most 1000, at ``rate`` letters a second) so it ends
within the request timeout: larger ones go through the CLI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BaseModel, Field

from lms_shared.auth import Principal
from lms_shared.errors import BadRequest, NotFound
from lms_shared.events import DeadLetter, DeadLetterQuery, EventBus
from lms_shared.http.auth import require

__all__ = ["DeadLetterOut", "DeadLetterPage", "ReplayRequest", "ReplayResult", "dead_letter_router"]


Text = Annotated[str | None, Query(max_length=255)]
Moment = Annotated[AwareDatetime | None, Query()]


class DeadLetterOut(BaseModel):
    """One dead letter: the event whole (attributes, data as base64) and why it died."""

    id: str
    group: str
    handler: str | None
    reason: str
    error: str
    attempts: int
    event_id: str
    event_type: str
    trace_id: str | None
    dead_at: datetime
    attributes: dict[str, str]
    data_base64: str

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterOut:
        """The view of a letter."""
        return cls.model_validate(letter.to_dict())


class DeadLetterPage(BaseModel):
    """A page of dead letters, oldest first, and how many match in all."""

    items: list[DeadLetterOut]
    total: int


class ReplayRequest(BaseModel):
    """Which dead letters to publish again, how fast, and whether for real."""

    type: str | None = Field(None, max_length=255)
    group: str | None = Field(None, max_length=64)
    reason: str | None = Field(None, max_length=40)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    ids: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=1000)
    rate: float = Field(10.0, gt=0, le=1000)
    limit: int = Field(100, ge=1, le=1000)
    dry_run: bool = False


class ReplayResult(BaseModel):
    """What a replay did: the letters replayed (or selected, on a dry run)."""

    count: int
    dry_run: bool
    letter_ids: list[str]
    error: str | None


def _query(
    type: str | None,
    group: str | None,
    reason: str | None,
    since: datetime | None,
    until: datetime | None,
    ids: list[str] | None = None,
) -> DeadLetterQuery:
    try:
        return DeadLetterQuery(
            type=type,
            group=group,
            reason=reason,
            since=since,
            until=until,
            ids=tuple(ids) if ids is not None else None,
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def dead_letter_router(
    bus: EventBus,
    *,
    permission: str = "events:admin",
    prefix: str = "/admin/events/dead-letters",
) -> APIRouter:
    """Routes over ``bus``'s dead letters (``bus.dead_letters``, replayed through ``bus``).

    Args:
        bus: the service's bus (``service.events``).
        permission: what the caller needs.
        prefix: where the routes live.
    """
    router = APIRouter(prefix=prefix, tags=["events"])
    admin = require(permission)

    @router.get("")
    async def list_dead_letters(
        _: Principal = admin,
        type: Text = None,
        group: Text = None,
        reason: Text = None,
        since: Moment = None,
        until: Moment = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> DeadLetterPage:
        """Dead letters, oldest first, filtered by type, group, reason and time."""
        query = _query(type, group, reason, since, until)
        store = bus.dead_letters
        letters = await store.list(query, limit=limit, offset=offset)
        return DeadLetterPage(
            items=[DeadLetterOut.of(x) for x in letters], total=await store.count(query)
        )

    @router.get("/{letter_id}")
    async def show_dead_letter(
        letter_id: Annotated[str, Path(max_length=64)], _: Principal = admin
    ) -> DeadLetterOut:
        """One dead letter, the event whole."""
        letter = await bus.dead_letters.get(letter_id)
        if letter is None:
            raise NotFound(f"no dead letter {letter_id}")
        return DeadLetterOut.of(letter)

    @router.post("/replay")
    async def replay_dead_letters(body: ReplayRequest, _: Principal = admin) -> ReplayResult:
        """Publish the selected letters again to their groups (at most ``limit``, ``rate``/s)."""
        query = _query(body.type, body.group, body.reason, body.since, body.until, body.ids)
        report = await bus.replay(query, rate=body.rate, limit=body.limit, dry_run=body.dry_run)
        return ReplayResult(
            count=report.count,
            dry_run=report.dry_run,
            letter_ids=[x.id for x in report.letters],
            error=report.error,
        )

    @router.delete("")
    async def purge_dead_letters(
        _: Principal = admin,
        type: Text = None,
        group: Text = None,
        reason: Text = None,
        since: Moment = None,
        until: Moment = None,
        everything: Annotated[bool, Query(alias="all")] = False,
    ) -> dict[str, Any]:
        """Delete the selected letters; with no filter, only with ``all=true``."""
        query = _query(type, group, reason, since, until)
        if query.is_everything and not everything:
            raise BadRequest("name a filter, or all=true to purge every dead letter")
        return {"purged": await bus.dead_letters.purge(query)}

    return router
