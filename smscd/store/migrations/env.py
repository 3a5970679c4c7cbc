"""Alembic environment for smscd, configured in code (no alembic.ini).

``smscd.store.migrate`` builds the ``Config`` and hands over an open
connection in ``config.attributes["connection"]``; this module only runs the
migrations on it. ``render_as_batch`` lets future migrations alter tables on
SQLite (copy-and-move).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from smscd.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("smscd migrations run through smscd.store.migrate.upgrade(url)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
