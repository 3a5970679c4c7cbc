"""The store's hot statements on SQLite, run on the DBAPI cursor.

Theory of operation
-------------------
SQLAlchemy's execution of a Core statement (cache key, execution context,
parameter and result processing, events) costs several times pysqlite's own
``execute`` of it, in Python, under the GIL the event loop needs; and at the
daemon's low rates a transaction holds one MO and a dozen statements, so that
overhead is a large part of the store's CPU per MO (figures: CHANGELOG.md).
So the statements of the daemon's write path are marked :func:`prepared`
where they are built (module constants of the store's parts, ``_intake``,
``_decisions``...), and on SQLite each is compiled ONCE by SQLAlchemy, for
the engine's dialect, into what pysqlite runs directly:

* the SQL text, and its parameter names in order (``positiontup``);
* per parameter, the statement's own value (``state = 'received'``) if it has
  one, and the bind processor of its type (``UtcDateTime`` turns a datetime
  into the stored ISO text; ``Boolean`` into 0/1);
* an IN list (an ``expanding`` bindparam) becomes
  ``IN (SELECT value FROM json_each(?))`` with the list as one JSON array, so
  one text serves every length (SQLite plans it as the same index search);
* per result column, the result processor of its type (ISO text back into an
  aware datetime), and rows come back as named tuples (``row.id``).

The statement text, its types and the transaction (``BEGIN IMMEDIATE``, the
commit) stay SQLAlchemy's: only the per-statement bookkeeping is skipped. A
statement that is not marked, an INSERT whose columns need a Python-side
default, a bind rendered into the text per execution, every statement on
PostgreSQL (whose cost is the network), and every statement of a connection
whose engine has cursor event listeners (a tracer, a test injecting a
failure: they must see everything) run through SQLAlchemy:
:class:`Statements` is the one object the store's methods execute on,
whatever the dialect.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import namedtuple
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from sqlalchemy.engine import Connection, Dialect
    from sqlalchemy.sql.base import Executable

__all__ = ["DBAPI_ERRORS", "Plans", "Statements", "prepared"]

ExecutableT = TypeVar("ExecutableT", bound="Executable")

#: What a statement run here raises instead of SQLAlchemy's wrapped errors.
DBAPI_ERRORS = (sqlite3.Error,)

#: The statements marked with :func:`prepared`, by id (held here, so that an id
#: stays theirs).
_PREPARED: dict[int, Executable] = {}

_POSTCOMPILE = re.compile(r"__\[POSTCOMPILE_(\w+)\]")
_REQUIRED = object()


def prepared(statement: ExecutableT) -> ExecutableT:
    """Mark a statement built once (a module constant) as one to run on the
    DBAPI cursor where the dialect allows; returns it."""
    _PREPARED[id(statement)] = statement
    return statement


@attrs.frozen
class _Bind:
    #: The key the caller's parameters use.
    key: str
    default: Any
    process: Callable[[Any], Any] | None
    expanding: bool

    def value(self, params: Mapping[str, Any]) -> Any:
        value = params.get(self.key, self.default)
        if value is _REQUIRED:
            raise KeyError(f"a value is required for bind parameter {self.key!r}")
        if self.expanding:
            return json.dumps(list(value))
        if value is None or self.process is None:
            return value
        return self.process(value)


@attrs.frozen
class _Plan:
    """One statement compiled for pysqlite."""

    sql: str
    binds: tuple[_Bind, ...]
    #: Named tuple of a result row; None for a statement that returns none.
    row: type[tuple[Any, ...]] | None
    #: Result processor of each column that has one, by position.
    results: tuple[tuple[int, Callable[[Any], Any]], ...]

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(bind.value(params) for bind in self.binds)

    def rows(self, raw: list[Any]) -> list[Any]:
        make = self.row
        assert make is not None
        if self.results:
            converted = []
            for values in raw:
                values = list(values)
                for index, process in self.results:
                    if values[index] is not None:
                        values[index] = process(values[index])
                converted.append(make._make(values))  # type: ignore[attr-defined]
            return converted
        return [make._make(values) for values in raw]  # type: ignore[attr-defined]


def _compile(statement: Executable, dialect: Dialect, keys: Sequence[str] | None) -> _Plan | None:
    compiled = statement.compile(dialect=dialect, column_keys=keys)  # type: ignore[attr-defined]
    names = compiled.positiontup
    if names is None or compiled.insert_prefetch or compiled.update_prefetch:
        # Not positional, or a column filled by a Python-side default: that
        # is SQLAlchemy's execution to do.
        return None
    binds = []
    for name in names:
        bind = compiled.binds[name]
        if bind.callable is not None or bind.literal_execute:
            return None  # a value computed, or rendered into the text, per execution
        required = bind.required
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bind.expanding and process is not None:
            return None
        binds.append(
            _Bind(
                key=bind.key,
                default=_REQUIRED if required else bind.value,
                process=process,
                expanding=bind.expanding,
            )
        )
    sql = _POSTCOMPILE.sub("SELECT value FROM json_each(?)", compiled.string)
    exported = getattr(statement, "exported_columns", None)
    columns = list(exported) if exported is not None else []
    row: type[tuple[Any, ...]] | None = None
    results: list[tuple[int, Callable[[Any], Any]]] = []
    if columns:
        assert exported is not None
        labels = [str(key) for key in exported.keys()]  # noqa: SIM118 - the labels, not the columns
        row = namedtuple("Row", labels, rename=True)  # type: ignore[misc, no-redef]
        for index, column in enumerate(columns):
            process = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if process is not None:
                results.append((index, process))
    return _Plan(sql=sql, binds=tuple(binds), row=row, results=tuple(results))


class Plans:
    """The compiled forms of the prepared statements for one engine."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._plans: dict[tuple[int, tuple[str, ...] | None], _Plan | None] = {}

    def plan(self, statement: Executable, params: Mapping[str, Any]) -> _Plan | None:
        # An INSERT's columns are those its parameters name.
        keys = tuple(params) if getattr(statement, "is_insert", False) else None
        key = (id(statement), keys)
        try:
            return self._plans[key]
        except KeyError:
            plan = self._plans[key] = _compile(statement, self._dialect, keys)
            return plan


class _Rows:
    """The part of SQLAlchemy's ``Result`` the store uses, over fetched rows."""

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int | None = None) -> None:
        self._rows = rows
        self.rowcount = rowcount
        #: The rowid of the row an INSERT of one row added.
        self.lastrowid = lastrowid

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise sqlite3.DatabaseError(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise sqlite3.DatabaseError(f"expected at most one row, got {len(self._rows)}")
        return self.scalar()

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


class Statements:
    """What the store's methods execute statements on, within one connection's
    transaction: prepared statements on the DBAPI cursor (SQLite), everything
    else through the SQLAlchemy connection."""

    def __init__(self, connection: Connection, plans: Plans | None) -> None:
        self.connection = connection
        dispatch = connection.dispatch
        instrumented = bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)
        #: None: every statement through SQLAlchemy (PostgreSQL, or someone
        #: listens to the engine's statements and must see them all).
        self._plans = None if instrumented else plans
        self._cursor: Any = None

    def execute(
        self,
        statement: Executable,
        parameters: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
    ) -> Any:
        if self._plans is None or id(statement) not in _PREPARED:
            return self.connection.execute(statement, parameters)
        if isinstance(parameters, list):
            return self._execute_many(statement, parameters)
        params: Mapping[str, Any] = parameters or {}  # type: ignore[assignment]
        plan = self._plans.plan(statement, params)
        if plan is None:
            return self.connection.execute(statement, parameters)
        cursor = self._open_cursor()
        cursor.execute(plan.sql, plan.args(params))
        rows = plan.rows(cursor.fetchall()) if plan.row is not None else []
        return _Rows(rows, cursor.rowcount, cursor.lastrowid)

    def _execute_many(self, statement: Executable, rows: list[Mapping[str, Any]]) -> Any:
        assert self._plans is not None
        plan = self._plans.plan(statement, rows[0]) if rows else None
        if plan is None or plan.row is not None:
            # Not compilable for the cursor, or rows to return from many.
            return self.connection.execute(statement, rows)
        cursor = self._open_cursor()
        cursor.executemany(plan.sql, [plan.args(row) for row in rows])
        return _Rows([], cursor.rowcount)

    def _open_cursor(self) -> Any:
        if self._cursor is None:
            self._cursor = self.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        return self._cursor

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
