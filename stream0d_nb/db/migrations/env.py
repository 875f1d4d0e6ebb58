"""Alembic environment of the registry, run programmatically (see ``registry.alembic_config``).

``Registry`` passes an open connection, already inside its transaction and holding the
migration lock, through ``config.attributes["connection"]``; developer commands pass a URL
through the ``sqlalchemy.url`` option instead. There is no offline (``--sql``) mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from stream0d_nb.db.base import Base
from stream0d_nb.db.registry import VERSION_TABLE

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    """Configure the context on ``connection`` and run the pending migrations."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=config.get_main_option("version_table") or VERSION_TABLE,
        # SQLite cannot ALTER most things: batch mode recreates tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # We emit BEGIN ourselves on SQLite, so its DDL is transactional too.
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Use the caller's connection if given, else connect to ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection: set config.attributes['connection'] or sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; use Registry(url)")
run_migrations_online()
