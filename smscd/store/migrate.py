"""Schema migrations (Alembic), configured in code: no alembic.ini at run time.

``upgrade(url)`` creates or migrates a database to the head revision;
``current_revision(url)`` and ``head_revision()`` tell ``open_store`` whether a
database is usable. Engines come from ``smscd.store._engine.create_store_engine``,
so a SQLite file created here is mode 0600 like one created by ``open_store``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from smscd.store._engine import DatabaseMissing, create_store_engine

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["alembic_config", "current_revision", "head_revision", "upgrade"]

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
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return current_revision_of(engine) or ""
    finally:
        engine.dispose()


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
