"""Datasets: data in Icechunk repositories, registry and audit in SQL (see ``store.Store``).

``Store`` is imported on first use, so that the record types of the table modules (used
by the HTTP client) come without Icechunk, Zarr and the readers.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stream0d_nb.store.store import Store

__all__ = ["Store"]


def __getattr__(name: str) -> Any:
    """``Store`` on first access (PEP 562)."""
    if name == "Store":
        from stream0d_nb.store.store import Store

        globals()["Store"] = Store
        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
