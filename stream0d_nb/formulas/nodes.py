"""Syntax nodes of a parsed formula: the only shapes the compiler accepts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pos:
    """Where a node starts in the formula text (1-based line and column)."""

    line: int
    column: int


@dataclass(frozen=True)
class Number:
    """A number literal, optionally with units (``5``, ``2.5 kW``, ``3 [m**3/h]``)."""

    value: float
    unit: str | None
    pos: Pos


@dataclass(frozen=True)
class Ref:
    """A channel reference: ``{any name}`` or a bare identifier."""

    name: str
    pos: Pos


@dataclass(frozen=True)
class Text:
    """A string literal; only allowed as a function argument (durations, methods, units)."""

    value: str
    pos: Pos


@dataclass(frozen=True)
class Unary:
    """``-x``, ``+x`` or ``not x``."""

    op: str
    operand: Node
    pos: Pos


@dataclass(frozen=True)
class Binary:
    """Arithmetic, comparison or boolean operator between two operands."""

    op: str
    left: Node
    right: Node
    pos: Pos


@dataclass(frozen=True)
class Call:
    """A call of a function from the function table, with positional and keyword args."""

    name: str
    args: tuple[Node, ...]
    kwargs: tuple[tuple[str, Node, Pos], ...]
    pos: Pos


Node = Number | Ref | Text | Unary | Binary | Call
