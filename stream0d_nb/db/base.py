"""What every registry table is built on: the declarative base, column types, the clock.

Kept apart from ``registry`` so that the table modules and the registry import it without
importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, MetaData, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase

from stream0d_nb.errors import ValidationError


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every registry timestamp is)."""
    return datetime.now(UTC)


# ----------------------------------------------------------------------------- types


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive values, store UTC (without tzinfo on SQLite, which cannot hold it)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(f"datetime {value!r} must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC datetimes whatever the backend gave back."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


# ----------------------------------------------------------------------------- ORM

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every registry table (named constraints for clean migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def retry_on_unique[T](fn: Callable[[], T], attempts: int = 3) -> T:
    """Run ``fn`` again when a concurrent writer beat us to a unique key.

    ``fn`` must open its own transaction, so that the retry sees the other writer's row.
    """
    for i in range(attempts):
        try:
            return fn()
        except IntegrityError:
            if i == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
