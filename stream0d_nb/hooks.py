"""The write hooks every entry point installs, so all of them react to new data alike.

Derived channels are re-materialised, the active models' prediction and residual
channels refreshed, and alert rules evaluated after each committed write. The store
cannot import these upper layers; platform code opens the store through
``stream0d_nb.platform.open_platform``, which installs them once.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from stream0d_nb import derived
from stream0d_nb.alerts.service import AlertService
from stream0d_nb.db.recal_tables import RecalRegistry
from stream0d_nb.specs import IngestReport
from stream0d_nb.store import Store

if TYPE_CHECKING:
    from stream0d_nb.recalibration.service import Recalibration


class _ModelChannels:
    """Refreshes model channels after writes; the modelling stack (scipy, scikit-learn:
    ~1.4 s to import) is loaded only once a written dataset has a model."""

    def __init__(self, store: Store) -> None:
        self.table = RecalRegistry(store.registry)
        self.service: Recalibration | None = None

    def after_write(self, store: Store, dataset_id: str, report: IngestReport) -> None:
        if report.commit is None:  # an append, buffered: the fold's commit refreshes them
            return
        models = self.table.models(dataset_id)
        if not models:
            return
        if self.service is None:
            from stream0d_nb.recalibration.service import Recalibration

            self.service = Recalibration(store)
        self.service.after_write(store, dataset_id, report, models)


_FOLLOWING: weakref.WeakSet[Store] = weakref.WeakSet()


def follow_writes(store: Store, alerts: AlertService | None = None) -> Store:
    """Install the standard write hooks on ``store`` once (``alerts``: an existing service
    to use for them); a store that already follows writes is returned as it is, so that
    no write runs the rules or refreshes models twice."""
    if store in _FOLLOWING:
        return store
    store.add_write_hook(derived.materialize_after_write)
    store.add_write_hook(_ModelChannels(store).after_write)
    store.add_write_hook((alerts or AlertService(store)).after_write)
    _FOLLOWING.add(store)
    return store
