"""PostgreSQL for tests: ``SMSCD_TEST_PG_URL`` names the server; every user gets
schemas of its own (``smscd_test_<run>_<n>``), dropped at the end."""

from __future__ import annotations

import secrets
from urllib.parse import quote

import sqlalchemy as sa

__all__ = ["PG_ENV", "PgSchemas"]

PG_ENV = "SMSCD_TEST_PG_URL"


class PgSchemas:
    """Hands out fresh schemas named ``smscd_test_<session>_<n>``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.prefix = f"smscd_test_{secrets.token_hex(4)}"
        self.count = 0
        self.engine = sa.create_engine(base_url)
        with self.engine.connect() as conn:  # fails loudly if unreachable
            conn.execute(sa.text("SELECT 1"))

    def new(self) -> str:
        self.count += 1
        schema = f"{self.prefix}_{self.count}"
        with self.engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}options={quote(f'-csearch_path={schema}')}"

    def drop_all(self) -> None:
        # One transaction per schema: a DROP ... CASCADE locks every object of
        # the schema until its commit, and a whole run's schemas at once
        # overflow the server's lock table (max_locks_per_transaction).
        for n in range(1, self.count + 1):
            with self.engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.prefix}_{n}" CASCADE'))
        self.engine.dispose()
