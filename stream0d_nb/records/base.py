"""What every record shares: read by attribute from ORM rows and domain objects, frozen,
tolerant of fields a newer server adds; and small field types used by several records."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict


class Record(BaseModel):
    """Base of the records the API returns.

    ``model_validate(row)`` reads an ORM row or a domain object by its attributes (a
    column named differently is a field's ``validation_alias``); ``model_validate(json)``
    reads the API's answer in the client, ignoring fields it does not know yet.
    """

    model_config = ConfigDict(from_attributes=True, frozen=True, extra="ignore")


class AttrView:
    """Several objects seen as one, for ``model_validate(..., from_attributes=True)``:
    ``values`` first, then each object's attributes in order.

    So that a record can be read from a row plus what the row lacks (the caller's role,
    a computed next slot) without copying fields one by one.
    """

    def __init__(self, *objects: object, **values: Any) -> None:
        self._objects = objects
        self._values = values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        for obj in self.__dict__.get("_objects", ()):
            try:
                return getattr(obj, name)
            except AttributeError:
                continue
        raise AttributeError(name)


def _from_ns(value: Any) -> Any:
    """UTC nanoseconds (the alert engine's times) as an aware datetime (microseconds)."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds, ns = divmod(value, 10**9)
        return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=ns // 1000)
    return value


def _finite(value: Any) -> Any:
    """NaN and infinities as None (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


DATASET_ID = AliasChoices("dataset", "dataset_id")
"""Where a record's ``dataset`` is read from: the API's field, or a row's column."""

UtcTime = Annotated[datetime, BeforeValidator(_from_ns)]
"""A time: a datetime, ISO text, or UTC nanoseconds (int)."""
Number = Annotated[float | None, BeforeValidator(_finite)]
"""A value that may be missing: NaN and infinities become None."""
