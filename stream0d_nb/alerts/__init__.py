"""Alerts: rules, evaluation, notifications (sinks, routing, dispatch)."""
