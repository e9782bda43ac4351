"""Database engine, declarative base, tenant scoping and the unit of work.

Tenant scoping is one mechanism: every ORM statement that touches a ``TenantScoped`` model gets
``tenant_id = <the session's tenant>`` added by a ``do_orm_execute`` hook, and a session with no
scope refuses such statements outright. Code never remembers to add the filter by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar, cast

from sqlalchemy import DateTime, ForeignKey, MetaData, Uuid, event, make_url, select, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.dialects import sqlite as sqlite_dialects
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    UOWTransaction,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.types import TypeDecorator

from atiende.core.clock import Clock, SystemClock, as_utc
from atiende.core.errors import PermissionDenied, TenantScopeMissing
from atiende.core.ids import new_id

log = logging.getLogger(__name__)

T = TypeVar("T")

NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC datetime")
        return as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class TenantScoped:
    """Mixin for every tenant-owned table; rows are visible only inside their tenant's scope.

    A model sets ``tenant_optional = True`` when some rows belong to no tenant (vendor staff
    users): those rows are visible only in the system scope.
    """

    tenant_optional: bool = False

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(
            ForeignKey("tenants.id", ondelete="CASCADE"),
            index=True,
            nullable=cls.tenant_optional,
        )


@dataclass(frozen=True, slots=True)
class Scope:
    """Which tenant's rows a session may see. ``tenant_id=None`` with ``all_tenants`` is the
    vendor/system view; a session with no scope at all cannot touch tenant data."""

    tenant_id: uuid.UUID | None
    all_tenants: bool = False

    @classmethod
    def tenant(cls, tenant_id: uuid.UUID) -> Scope:
        return cls(tenant_id=tenant_id)

    @classmethod
    def system(cls) -> Scope:
        return cls(tenant_id=None, all_tenants=True)


SCOPE_KEY: Final = "atiende.scope"
AFTER_COMMIT_KEY: Final = "atiende.after_commit"
CLOCK_KEY: Final = "atiende.clock"
PUBLISHER_KEY: Final = "atiende.publisher"
DATABASE_KEY: Final = "atiende.database"
READ_ONLY_OPTION: Final = "atiende_read_only"


def session_scope(session: Session | AsyncSession) -> Scope | None:
    scope = session.info.get(SCOPE_KEY)
    return scope if isinstance(scope, Scope) else None


def require_tenant(session: Session | AsyncSession) -> uuid.UUID:
    scope = session_scope(session)
    if scope is None or scope.tenant_id is None:
        raise TenantScopeMissing("this operation needs a tenant-scoped session")
    return scope.tenant_id


_tenant_tables_cache: dict[int, frozenset[object]] = {}


def _tenant_tables() -> frozenset[object]:
    """Tables of tenant-scoped models, recomputed only when a model is added."""
    mappers = Base.registry.mappers
    cached = _tenant_tables_cache.get(len(mappers))
    if cached is None:
        cached = frozenset(
            mapper.local_table for mapper in mappers if issubclass(mapper.class_, TenantScoped)
        )
        _tenant_tables_cache.clear()
        _tenant_tables_cache[len(mappers)] = cached
    return cached


def _touches_tenant_data(state: ORMExecuteState) -> bool:
    if any(issubclass(m.class_, TenantScoped) for m in state.all_mappers):
        return True
    # ``select(func.count()).select_from(Model)`` and selects from subqueries name no mapped
    # entity in their columns; look for tenant tables anywhere in the statement instead.
    tables = _tenant_tables()
    return any(
        element in tables
        for element in visitors.iterate(state.statement)  # type: ignore[arg-type]
    )


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        # Lazy loads follow an already-scoped parent; criteria propagate through the options.
        return
    if not _touches_tenant_data(state):
        return
    scope = session_scope(state.session)
    if scope is None:
        raise TenantScopeMissing("tenant data queried from a session without a scope")
    if scope.all_tenants:
        return
    tenant_id = scope.tenant_id
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, flush_context: UOWTransaction, instances: object) -> None:
    scope = session_scope(session)
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, TenantScoped):
            continue
        if scope is None:
            raise TenantScopeMissing("tenant data written from a session without a scope")
        if scope.all_tenants:
            if obj.tenant_id is None and not obj.tenant_optional:
                raise TenantScopeMissing("system-scoped writes must set tenant_id explicitly")
            continue
        if obj.tenant_id is None:
            obj.tenant_id = scope.tenant_id
        elif obj.tenant_id != scope.tenant_id:
            raise TenantScopeMissing("a row of another tenant cannot be written in this scope")


@asynccontextmanager
async def in_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> AsyncIterator[None]:
    """Narrow a system-scoped session to one tenant for a block (as a request does), e.g.
    to set up a tenant in the same unit of work that created it."""
    scope = session_scope(session)
    if scope is not None and scope.tenant_id == tenant_id:
        yield
        return
    if scope is None or not scope.all_tenants:
        raise PermissionDenied("This session cannot act for that tenant.")
    session.info[SCOPE_KEY] = Scope.tenant(tenant_id)
    try:
        yield
    finally:
        session.info[SCOPE_KEY] = scope


def clock_of(session: Session | AsyncSession) -> Clock:
    clock = session.info.get(CLOCK_KEY)
    return clock if clock is not None else SystemClock()


def now(session: Session | AsyncSession) -> datetime:
    """The unit of work's notion of now (a test clock in tests)."""
    return clock_of(session).now()


def database_of(session: Session | AsyncSession) -> Database:
    """The database a unit of work belongs to (to open a follow-up unit after commit)."""
    database = session.info.get(DATABASE_KEY)
    if not isinstance(database, Database):
        raise RuntimeError("session was not opened by Database.session")
    return database


async def advisory_lock(session: AsyncSession, key: str) -> None:
    """Serialise units of work on ``key`` until the transaction ends. PostgreSQL takes a
    transaction-level advisory lock; SQLite needs nothing, since every writing transaction
    there already holds the database's write lock (BEGIN IMMEDIATE)."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )


class Counter(Protocol):
    last_number: int


async def next_number(session: AsyncSession, model: type[Any], key_column: Any, key: str) -> int:
    """The next number of a gap-free sequence kept in a one-row-per-key counter table
    (``last_number``): the row is locked until the transaction ends, and created on first
    use even when two transactions race for it."""
    query = select(model).where(key_column == key).with_for_update()
    counter: Counter | None = await session.scalar(query)
    if counter is None:
        try:
            async with session.begin_nested():
                counter = model(**{key_column.key: key, "last_number": 0})
                session.add(counter)
        except IntegrityError:
            counter = await session.scalar(query)
            if counter is None:  # pragma: no cover - the row exists after the conflict
                raise
    counter.last_number += 1
    await session.flush()
    return counter.last_number


def after_commit(session: AsyncSession, callback: Callable[[], Any]) -> None:
    """Run ``callback`` (sync, or returning an awaitable) once the unit of work commits."""
    session.info.setdefault(AFTER_COMMIT_KEY, []).append(callback)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Take over transaction control from pysqlite so BEGIN IMMEDIATE works.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")  # the same 10 s as the driver timeout
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers queue on the database lock up front instead of failing on lock upgrade;
        # read-only units of work read a WAL snapshot without taking the write lock.
        sql = "BEGIN" if conn.get_execution_options().get(READ_ONLY_OPTION) else "BEGIN IMMEDIATE"
        driver = conn.connection.driver_connection
        if isinstance(driver, sqlite3.Connection):  # synchronous units: straight to it
            driver.execute(sql)
        else:
            conn.exec_driver_sql(sql)


def create_engine(url: str, *, pool: bool = True) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 10}
    elif not pool:
        kwargs["poolclass"] = NullPool
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        _configure_sqlite(engine.sync_engine)
    return engine


class _SqliteDirect:
    """Synchronous units of work on a SQLite file (``Database.run_sync``), through the
    standard library's driver.

    A unit runs in the event loop itself: it is a few statements of CPU work, and on a
    thread of its own it paid more for the interpreter lock changing hands around every
    driver call (two context switches each time the loop was busy) than for the
    statements. So that nothing in it can wait: its connection does not wait for the
    file lock (a unit that finds another process writing runs on the thread instead, with
    the usual 10 s busy timeout) and does not checkpoint the write-ahead log as it
    commits; the thread does that after every ``CHECKPOINT_EVERY`` units (the
    asynchronous driver's connections still checkpoint as they commit).
    """

    CHECKPOINT_EVERY = 200

    def __init__(self, url: str) -> None:
        self.in_loop = self._engine(url, in_loop=True)
        self.waiting = self._engine(url, in_loop=False)
        self.thread = ThreadPoolExecutor(1, "atiende-sqlite")
        self.units = 0
        self._connection: Connection | None = None

    def discard_connection(self) -> None:
        if self._connection is not None:
            self._connection.invalidate()
            self._connection = None

    def connection(self) -> Connection:
        """The loop's connection, kept between units (a checkout from the pool and its
        reset cost a third of an empty unit)."""
        if self._connection is None or self._connection.closed or self._connection.invalidated:
            self._connection = self.in_loop.connect()
        return self._connection

    async def checkpoint(self) -> None:
        """Copy the write-ahead log into the database, on the thread, as far as readers
        allow. The caller holds the write turn, as SQLite's own checkpoint on commit holds
        the write lock: with units committing meanwhile the log could never be copied
        whole, and would grow on. The units before it are committed whatever happens."""
        try:
            await asyncio.get_running_loop().run_in_executor(self.thread, _checkpoint, self.waiting)
        except Exception:
            log.exception("checkpointing the SQLite write-ahead log failed")

    @staticmethod
    def usable(url: str) -> bool:
        """False for an in-memory database, which a second engine would not see."""
        parsed = make_url(url)
        return (
            bool(parsed.database)
            and parsed.database != ":memory:"
            and ("memory" not in str(parsed.query))
        )

    @staticmethod
    def _engine(url: str, *, in_loop: bool) -> Engine:
        engine = create_sync_engine(
            make_url(url).set(drivername="sqlite"),
            # Opened in one thread, closed from another when the engine goes.
            connect_args={"timeout": 0 if in_loop else 10, "check_same_thread": False},
            pool_size=1,
        )
        _configure_sqlite(engine)
        if in_loop:

            @event.listens_for(engine, "connect")
            def _never_wait(dbapi_connection: Any, connection_record: Any) -> None:
                dbapi_connection.execute("PRAGMA busy_timeout=0")
                dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        return engine

    async def dispose(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self.in_loop.dispose()
        await asyncio.get_running_loop().run_in_executor(self.thread, self.waiting.dispose)
        self.thread.shutdown(wait=False)


class _FileLocked(Exception):
    """Another process holds SQLite's write lock."""


def _checkpoint(engine: Engine) -> None:
    """Copy what the write-ahead log holds into the database as far as readers allow,
    without waiting for anyone (outside any transaction: on the driver's connection)."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        cursor.close()
    finally:
        connection.close()


def _is_busy(error: OperationalError | sqlite3.OperationalError) -> bool:
    cause = error.orig if isinstance(error, OperationalError) else error
    return isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause)


class Publisher(Protocol):
    async def publish(self, envelope: Any) -> None: ...


_NO_LOCK = contextlib.nullcontext()
SQLITE_WRITER_WAIT_SECONDS = 10.0  # as long as the file lock's busy timeout


@asynccontextmanager
async def _sqlite_turn(lock: asyncio.Lock) -> AsyncIterator[None]:
    try:
        if lock.locked():  # a timer only when there is a wait (it costs a task each time)
            await asyncio.wait_for(lock.acquire(), SQLITE_WRITER_WAIT_SECONDS)
        else:
            await lock.acquire()
    except TimeoutError as error:
        raise RuntimeError(
            "no SQLite write turn in 10 s: a writing unit of work opened inside another one?"
        ) from error
    try:
        yield
    finally:
        lock.release()


class Database:
    """The engine plus the unit of work: one transaction per request or job."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        publisher: Publisher | None = None,
        pool: bool = True,
    ) -> None:
        self.url = url
        self.clock: Clock = clock or SystemClock()
        self.publisher = publisher
        self.engine = create_engine(url, pool=pool)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time. Writers of this process queue here, in order,
        # instead of polling the file lock (busy_timeout sleeps), which under load turned
        # into seconds of tail latency; other processes still meet at the file lock.
        self._sqlite_writer = asyncio.Lock() if url.startswith("sqlite") else None
        # See ``run_sync``: created on first use.
        self._sqlite_direct: _SqliteDirect | None = None
        self._sqlite_file = url.startswith("sqlite") and _SqliteDirect.usable(url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(
        self, scope: Scope | None, *, read_only: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """Open a session, commit when the block ends, then run after-commit callbacks.

        ``read_only`` promises the block writes nothing; on SQLite it then reads a snapshot
        without queueing for the write lock (a write inside it could fail under contention).
        """
        writer = (
            _sqlite_turn(self._sqlite_writer)
            if self._sqlite_writer is not None and not read_only
            else _NO_LOCK
        )
        async with writer, self.sessionmaker() as session:
            self._prepare(session, scope)
            if read_only:
                await session.connection(execution_options={READ_ONLY_OPTION: True})
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
            callbacks = session.info.pop(AFTER_COMMIT_KEY, [])
        await _after_commit(callbacks)

    def _prepare(self, session: Session | AsyncSession, scope: Scope | None) -> None:
        session.info[SCOPE_KEY] = scope
        session.info[CLOCK_KEY] = self.clock
        session.info[PUBLISHER_KEY] = self.publisher
        session.info[DATABASE_KEY] = self

    async def run_sync(self, scope: Scope | None, work: Callable[[Session], T]) -> T:
        """A writing unit of work whose statements are all known up front, written as
        synchronous code: ``work(session)``, then commit, then the after-commit callbacks.

        On a SQLite file it runs through the standard library's driver, in the event loop
        (``_SqliteDirect``): through the asynchronous driver every statement costs three
        or four hops between the loop and the driver's thread (about 2 ms of CPU for a
        small transaction). It waits for this process's write turn like any writer.
        Elsewhere (PostgreSQL, an in-memory SQLite) it is ``session.run_sync`` in an
        ordinary unit of work, with the same semantics. ``work`` must not wait on
        anything but the database.
        """
        if self._sqlite_writer is None or not self._sqlite_file:
            async with self.session(scope) as session:
                return await session.run_sync(work)
        if self._sqlite_direct is None:
            self._sqlite_direct = _SqliteDirect(self.url)
        direct = self._sqlite_direct
        loop = asyncio.get_running_loop()
        async with _sqlite_turn(self._sqlite_writer):
            try:
                result, callbacks = self._unit(direct.connection(), scope, work)
            except _FileLocked:  # another process writes: wait for it off the loop
                direct.discard_connection()
                result, callbacks = await loop.run_in_executor(
                    direct.thread, self._unit, direct.waiting, scope, work
                )
            direct.units += 1
            if direct.units % direct.CHECKPOINT_EVERY == 0:
                await direct.checkpoint()
        await _after_commit(callbacks)
        return result

    def _unit(
        self, bind: Engine | Connection, scope: Scope | None, work: Callable[[Session], T]
    ) -> tuple[T, list[Callable[[], Any]]]:
        with Session(bind, expire_on_commit=False) as session:
            self._prepare(session, scope)
            try:
                session.connection()  # BEGIN IMMEDIATE
            except (OperationalError, sqlite3.OperationalError) as error:
                if _is_busy(error):
                    raise _FileLocked from error
                raise
            try:
                result = work(session)
                session.commit()
            except BaseException:
                session.rollback()
                raise
            return result, session.info.pop(AFTER_COMMIT_KEY, [])

    async def dispose(self) -> None:
        if self._sqlite_direct is not None:
            direct, self._sqlite_direct = self._sqlite_direct, None
            await direct.dispose()
        await self.engine.dispose()


class DriverStatement:
    """A Core statement compiled once for SQLite and run straight on the standard
    library's driver, inside a unit of work of ``Database.run_sync`` on a SQLite file.

    Every bound value goes through its column type's own SQLAlchemy bind processor and
    every result column through its result processor, so rows are stored and read exactly
    as the ORM stores and reads them; only SQLAlchemy's execution layers are left out,
    which cost 50-100 µs a statement where the driver takes 5-10. For the few hottest
    statements (webhook intake); ``usable`` says whether a session can run them.
    """

    _DIALECT = sqlite_dialects.dialect(paramstyle="named")

    def __init__(self, statement: ClauseElement, columns: Iterable[str] | None = None) -> None:
        """``columns``: for an INSERT, the columns given (the others take their defaults)."""
        compiled = cast(
            SQLCompiler,
            statement.compile(
                dialect=self._DIALECT, column_keys=None if columns is None else list(columns)
            ),
        )
        self.sql = str(compiled)
        self._binds = [
            (name, bind.type.dialect_impl(self._DIALECT).bind_processor(self._DIALECT))
            for name, bind in compiled.binds.items()
        ]
        columns = getattr(statement, "exported_columns", ())  # a SELECT's, or RETURNING
        self._results = [
            column.type.dialect_impl(self._DIALECT).result_processor(self._DIALECT, None)
            for column in columns
        ]

    @staticmethod
    def connection(session: Session) -> sqlite3.Connection | None:
        """The session's standard-library SQLite connection to run these on, or None
        (another driver: run the statement through SQLAlchemy)."""
        connection = session.connection().connection.driver_connection
        return connection if isinstance(connection, sqlite3.Connection) else None

    def _params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            name: values[name] if process is None else process(values[name])
            for name, process in self._binds
        }

    def _row(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            value if process is None else process(value)
            for value, process in zip(row, self._results, strict=True)
        )

    def rows(
        self, connection: sqlite3.Connection, values: Iterable[Mapping[str, Any]]
    ) -> list[list[tuple[Any, ...]]]:
        """Run it once for each set of values (a value for every bound name); the rows each
        run answers."""
        cursor = connection.cursor()
        try:
            return [
                [self._row(row) for row in cursor.execute(self.sql, self._params(one))]
                for one in values
            ]
        finally:
            cursor.close()

    def run_many(self, connection: sqlite3.Connection, values: Iterable[Mapping[str, Any]]) -> None:
        """Run it for each set of values (no rows answered)."""
        connection.executemany(self.sql, [self._params(one) for one in values])


async def _after_commit(callbacks: list[Callable[[], Any]]) -> None:
    for callback in callbacks:
        # The change is committed; a failing follower (a bus publish while Redis is down)
        # must not turn a durable success into an error. Subscribers re-read the log.
        try:
            result = callback()
            if hasattr(result, "__await__"):
                await result
        except Exception:
            log.exception("after-commit callback failed")
