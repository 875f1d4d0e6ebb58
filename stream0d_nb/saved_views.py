"""Saved views on a store: the checks a view passes when it is saved, and the save itself.

Shared by the API (``api/routes/views.py``) and the CLI (``stream0d views``) so that both
apply the same rules: the range is not empty now, every channel is a stored or derived
channel of the dataset. The model is ``stream0d_nb.views.ViewSpec``; the table is
``stream0d_nb.db.view_tables``.
"""

from __future__ import annotations

from stream0d_nb.db.view_tables import ViewRegistry
from stream0d_nb.errors import ValidationError
from stream0d_nb.store import Store
from stream0d_nb.views import ViewSpec

__all__ = ["check_view", "save_view"]


def check_view(store: Store, dataset_id: str, spec: ViewSpec) -> None:
    """ValidationError when the view's range is empty now or it names an unknown channel."""
    try:
        spec.resolve()
    except ValueError as exc:
        raise ValidationError(f"end: {exc}") from None
    known = set(store.data(dataset_id).snapshot().channels)
    known |= {f.name for f in store.registry.list_formulas(dataset_id)}
    missing = [c for c in spec.channels if c not in known]
    if missing:
        raise ValidationError(
            f"channels: dataset {dataset_id!r} has no channel or derived channel "
            + ", ".join(map(repr, missing))
        )


def save_view(
    store: Store, dataset_id: str, spec: ViewSpec, actor: str | None, *, create_only: bool
) -> tuple[ViewSpec, bool]:
    """Check, then create or replace the view (audited); ``(saved, created)``."""
    check_view(store, dataset_id, spec)
    return ViewRegistry(store.registry).save(
        dataset_id, spec, store.actor(actor), create_only=create_only
    )
