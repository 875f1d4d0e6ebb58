"""Limits on formulas that no formula can bypass (checked while parsing and evaluating)."""

from __future__ import annotations

from dataclasses import dataclass

DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class Limits:
    """Bounds on formula text, structure, windows, output size and evaluation time."""

    max_length: int = 4000  # characters of formula text
    max_depth: int = 40  # nesting of the syntax tree (parentheses, calls, operators)
    max_nodes: int = 500  # nodes of the syntax tree
    max_name_length: int = 256  # characters of a channel name, unit or string argument
    max_window_ns: int = 400 * DAY_NS  # windows, shifts, fill limits, resample intervals
    max_values: int = 100_000_000  # values of any array computed (result or intermediate)
    max_seconds: float = 60.0  # wall-clock time of one evaluation
    max_window_work: int = 200_000_000  # values x window for kernels without a fast path (mad)
