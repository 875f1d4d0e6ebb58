"""Alerts: rules, evaluation, notifications (sinks, routing, dispatch).

``rules.AlertRule`` (pydantic specs that compile to formulas), ``engine.evaluate_rules``
(the pure engine: rules + data over a range -> episodes, transitions, state) with its
vectorised state machine in ``machine``; ``nab`` scores backfilled episodes against
labelled windows.
"""

from stream0d_nb.alerts.engine import (
    Episode,
    EvaluationResult,
    Transition,
    evaluate_rules,
    lookback_ns,
)
from stream0d_nb.alerts.rules import AlertRule

__all__ = [
    "AlertRule",
    "Episode",
    "EvaluationResult",
    "Transition",
    "evaluate_rules",
    "lookback_ns",
]
