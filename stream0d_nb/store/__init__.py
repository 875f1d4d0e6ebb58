"""Datasets: data in Icechunk repositories, registry and audit in SQL (see ``store.Store``)."""

from stream0d_nb.store.store import Store

__all__ = ["Store"]
