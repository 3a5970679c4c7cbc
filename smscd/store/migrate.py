"""Schema migrations (Alembic), configured in code: no alembic.ini at run time.

``upgrade(url)`` creates or migrates a database to the head revision;
``current_revision(url)`` and ``head_revision()`` tell ``open_store`` whether a
database is usable. Engines come from ``smscd.store._engine.create_store_engine``,
so a SQLite file created here is mode 0600 like one created by ``open_store``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from smscd.store._engine import DatabaseMissing, create_store_engine
from smscd.store.types import StoreError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["MigrationFailed", "alembic_config", "current_revision", "head_revision", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic ``Config`` pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts"
    return head


def upgrade(url: str) -> str:
    """Create or migrate the database at ``url`` to the head; returns the head."""
    engine = create_store_engine(url, create_file=True)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # A batch migration copies a table and drops the old one; with
                # foreign keys on, that drop deletes (or refuses) the rows that
                # point at it. The check runs once, before the commit, instead.
                _sqlite_driver(connection).execute("PRAGMA foreign_keys=OFF")
            try:
                with connection.begin():
                    config = alembic_config()
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                        raise MigrationFailed("the migrated database breaks a foreign key")
            finally:
                if sqlite:
                    _sqlite_driver(connection).execute("PRAGMA foreign_keys=ON")
        return current_revision_of(engine) or ""
    finally:
        engine.dispose()


class MigrationFailed(StoreError):
    """A migration left the database inconsistent; it was rolled back."""


def _sqlite_driver(connection: Connection) -> Any:
    """The pysqlite connection itself: a PRAGMA sent outside any transaction."""
    return connection.connection.driver_connection


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    try:
        engine = create_store_engine(url, create_file=False)
    except DatabaseMissing:
        return None
    try:
        return current_revision_of(engine)
    finally:
        engine.dispose()


def current_revision_of(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
