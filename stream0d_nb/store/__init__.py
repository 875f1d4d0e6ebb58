"""Datasets: data in Icechunk repositories, registry and audit in SQL (see ``store.Store``)."""

from stream0d_nb.store import access_tables as _access_tables  # registers its tables
from stream0d_nb.store import alert_tables as _alert_tables  # registers its tables
from stream0d_nb.store import recal_tables as _recal_tables  # registers its tables
from stream0d_nb.store.store import Store

__all__ = ["Store"]
del _access_tables, _alert_tables, _recal_tables
