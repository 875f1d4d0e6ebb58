"""The write hooks every entry point installs, so all of them react to new data alike.

Derived channels are re-materialised, the active models' prediction and residual
channels refreshed, and alert rules evaluated after each committed write. The store
cannot import these upper layers; the CLI, the API and the notebooks call this instead.
"""

from __future__ import annotations

from stream0d_nb import derived
from stream0d_nb.alerts.service import AlertService
from stream0d_nb.recalibration.service import Recalibration
from stream0d_nb.store import Store


def follow_writes(store: Store, alerts: AlertService | None = None) -> Store:
    """Install the standard write hooks on ``store`` (``alerts``: an existing service)."""
    store.add_write_hook(derived.materialize_after_write)
    store.add_write_hook(Recalibration(store).after_write)
    store.add_write_hook((alerts or AlertService(store)).after_write)
    return store
