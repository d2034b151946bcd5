"""Units of work: ``transaction()``, ``run()`` and the ``transactional`` decorator.

A unit of work is one ``AsyncSession`` in one transaction: committed when
the block (or function) returns, rolled back when it raises, and its
errors translated at this boundary (see ``_retry``). ``transaction()`` is
one attempt and may be a savepoint of an enclosing one; ``run()`` owns the
whole function, so it can run it again after a serialization failure, a
deadlock or a lost connection, sleeping on the injected clock in between.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from contextvars import ContextVar
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lms_shared.clock import Clock
from lms_shared.db._config import DatabaseConfig
from lms_shared.db._errors import DatabaseBusy, DatabaseUnavailable, StaleRead
from lms_shared.db._errors import TransactionConflict as _Conflict
from lms_shared.db._retry import Phase, backoff_delay, translate
from lms_shared.db._scoping import ALL_TENANTS_KEY, CLOCK_KEY, TENANT_KEY, current_tenant

__all__ = ["UnitsOfWork"]

T = TypeVar("T")
P = ParamSpec("P")
Work = Callable[[AsyncSession], Awaitable[T]]

_NO_OPTIONS: dict[str, Any] = {}
_active: ContextVar[tuple[UnitsOfWork, AsyncSession] | None] = ContextVar(
    "lms_db_unit", default=None
)


class UnitsOfWork:
    """The unit-of-work half of :class:`~lms_shared.db.Database`.

    The database supplies the configuration, the clock, the session
    makers (:meth:`_maker`) and the pool's saturation (:meth:`_saturated`).
    """

    config: DatabaseConfig
    clock: Clock
    log: Any
    reconnect_backoff: float
    _bound: async_sessionmaker[AsyncSession] | None
    _replicas: list[AsyncEngine]
    _read_only_options: dict[str, Any]
    _waits: int
    _timeouts: int

    def _maker(self, read_only: bool, primary: bool) -> async_sessionmaker[AsyncSession]:
        raise NotImplementedError

    def _saturated(self) -> bool:
        raise NotImplementedError

    def transaction(
        self,
        *,
        read_only: bool = False,
        tenant: str | None = None,
        all_tenants: bool = False,
        isolation: str | None = None,
    ) -> AbstractAsyncContextManager[AsyncSession]:
        """One unit of work: an ``AsyncSession`` committed on success, rolled back on error.

        Inside another transaction of this database (in the same task) it
        is a savepoint of it, with the outer transaction's options.

        Args:
            read_only: a read-only transaction, sent to a replica when there are some.
            tenant: scope tenant-owned models to this tenant; defaults to
                the one set by :func:`~lms_shared.db.tenant_context`.
            all_tenants: no tenant scoping (admin work); exclusive with ``tenant``.
            isolation: ``"SERIALIZABLE"``, ``"REPEATABLE READ"``, ... (PostgreSQL).

        Raises:
            DatabaseBusy: no pooled connection within the pool timeout.
            DatabaseUnavailable: the database cannot be reached.
            TransactionConflict: a serialization failure or deadlock (one
                attempt: use :meth:`run` to retry).
            ConstraintViolation: a constraint refused the change.
        """
        if tenant is not None and all_tenants:
            raise ValueError("a transaction has a tenant or all tenants, not both")
        return self._unit(read_only, tenant, all_tenants, isolation, primary=False)

    @asynccontextmanager
    async def _unit(
        self,
        read_only: bool,
        tenant: str | None,
        all_tenants: bool,
        isolation: str | None,
        *,
        primary: bool,
    ) -> AsyncIterator[AsyncSession]:
        active = _active.get()
        if active is not None and active[0] is self:
            outer = active[1]
            if tenant is not None and tenant != outer.info.get(TENANT_KEY):
                raise ValueError("a nested transaction cannot change the tenant")
            async with self._translated("body"), outer.begin_nested():
                yield outer
            return
        maker = self._maker(read_only, primary)
        session = maker()
        session.info[CLOCK_KEY] = self.clock
        tenant = tenant if tenant is not None or all_tenants else current_tenant()
        if tenant is not None:
            session.info[TENANT_KEY] = tenant
        session.info[ALL_TENANTS_KEY] = all_tenants
        token = _active.set((self, session))
        phase: Phase = "connect"
        try:
            if maker is self._bound:
                await session.connection()
            else:
                if self._saturated():
                    self._waits += 1
                await session.connection(execution_options=self._options(read_only, isolation))
            phase = "body"
            yield session
            phase = "commit"
            await session.commit()
        except BaseException as exc:
            await self._discard(session)
            self._raise_translated(exc, phase)
            raise
        else:
            await session.close()
        finally:
            _active.reset(token)

    @asynccontextmanager
    async def _translated(self, phase: Phase) -> AsyncIterator[None]:
        try:
            yield
        except Exception as exc:
            self._raise_translated(exc, phase)
            raise

    def _raise_translated(self, exc: BaseException, phase: Phase) -> None:
        error = translate(exc, phase=phase, where=self.config.where)
        if error is None:
            return
        if isinstance(error, DatabaseBusy):
            self._timeouts += 1
        raise error from exc

    def _options(self, read_only: bool, isolation: str | None) -> dict[str, Any]:
        if isolation is None:
            return self._read_only_options if read_only else _NO_OPTIONS
        return {"isolation_level": isolation, **(self._read_only_options if read_only else {})}

    async def _discard(self, session: AsyncSession) -> None:
        try:
            await session.close()
        except (DBAPIError, OSError) as exc:  # the connection is already gone
            self.log.debug("discarding a broken session", error=repr(exc))

    async def run(
        self,
        work: Work[T],
        *,
        read_only: bool = False,
        tenant: str | None = None,
        all_tenants: bool = False,
        isolation: str | None = None,
        attempts: int | None = None,
    ) -> T:
        """Run ``work(tx)`` in a unit of work, re-running it when that is safe.

        A serialization failure, a deadlock or a :class:`StaleRead` the
        work raised (an event stream moved since it was read) re-runs the
        whole function, up to ``attempts`` times
        (``LMS_DATABASE_RETRY_ATTEMPTS``); a lost
        connection (server restarting, replica down) re-runs it up to
        ``LMS_DATABASE_CONNECT_RETRIES`` times, read-only work then going to
        the primary. Backoff sleeps on the injected clock. Inside another
        transaction it runs once, in a savepoint: the outer unit retries.

        Args:
            work: an async function of the session; it must not have side
                effects outside the database (it may run more than once).
            read_only: see :meth:`transaction`; so are the other options.
            tenant: see :meth:`transaction`.
            all_tenants: see :meth:`transaction`.
            isolation: see :meth:`transaction`.
            attempts: overrides ``LMS_DATABASE_RETRY_ATTEMPTS``.

        Raises:
            TransactionConflict: still conflicting after the last attempt.
            StaleRead: the work's own, still stale after the last attempt.
            DatabaseUnavailable: still unreachable after the last attempt,
                or lost while committing (``outcome_unknown``, never retried).
        """
        if tenant is not None and all_tenants:
            raise ValueError("a transaction has a tenant or all tenants, not both")
        active = _active.get()
        if active is not None and active[0] is self:
            async with self._unit(read_only, tenant, all_tenants, isolation, primary=False) as tx:
                return await work(tx)
        limit = attempts if attempts is not None else self.config.retry_attempts
        if limit < 1:
            raise ValueError(f"attempts must be at least 1, got {limit}")
        conflicts = disconnects = 0
        primary = False
        while True:
            try:
                async with self._unit(
                    read_only, tenant, all_tenants, isolation, primary=primary
                ) as tx:
                    result = await work(tx)
            except _Conflict as exc:
                conflicts += 1
                if conflicts >= limit:
                    raise _Conflict(
                        f"the change kept colliding with concurrent ones ({conflicts} attempts)",
                        attempts=conflicts,
                        sqlstate=exc.sqlstate,
                    ) from exc
                delay = backoff_delay(conflicts, self.config.retry_backoff, 2.0)
                self.log.info("retrying after a conflict", sqlstate=exc.sqlstate, delay=delay)
            except StaleRead as exc:
                conflicts += 1
                if conflicts >= limit:
                    raise
                delay = backoff_delay(conflicts, self.config.retry_backoff, 2.0)
                self.log.info("retrying after a stale read", error=exc.detail, delay=delay)
            except DatabaseUnavailable as exc:
                if exc.outcome_unknown:
                    raise
                disconnects += 1
                primary = primary or bool(read_only and self._replicas)
                if disconnects >= self.config.connect_retries:
                    raise DatabaseUnavailable(
                        f"{exc.detail}; gave up after {disconnects} attempts",
                        host=exc.host,
                        attempts=disconnects,
                    ) from exc
                delay = backoff_delay(disconnects, self.reconnect_backoff, 2.0)
                self.log.warning("reconnecting to the database", error=exc.detail, delay=delay)
            else:
                return result
            await self.clock.sleep(delay)

    def transactional(
        self,
        *,
        read_only: bool = False,
        all_tenants: bool = False,
        isolation: str | None = None,
        attempts: int | None = None,
    ) -> Callable[
        [Callable[Concatenate[AsyncSession, P], Awaitable[T]]], Callable[P, Awaitable[T]]
    ]:
        """Decorate ``async def f(tx, ...)`` into ``async def f(...)`` run by :meth:`run`.

        The session parameter disappears from the signature, so the result
        can be a FastAPI route handler; the tenant comes from
        :func:`~lms_shared.db.tenant_context`.
        """

        def decorate(
            fn: Callable[Concatenate[AsyncSession, P], Awaitable[T]],
        ) -> Callable[P, Awaitable[T]]:
            @functools.wraps(fn)
            async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
                return await self.run(
                    lambda tx: fn(tx, *args, **kwargs),
                    read_only=read_only,
                    all_tenants=all_tenants,
                    isolation=isolation,
                    attempts=attempts,
                )

            try:
                signature = inspect.signature(fn, eval_str=True)
            except NameError:
                signature = inspect.signature(fn)
            params = list(signature.parameters.values())
            if not params:
                raise TypeError(f"{fn.__qualname__} must take the session as its first argument")
            wrapper.__signature__ = signature.replace(parameters=params[1:])  # type: ignore[attr-defined]
            return wrapper

        return decorate
