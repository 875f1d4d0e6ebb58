"""Unit rules of formulas, on the shared pint registry (``stream0d_nb.units.ureg``).

Values are computed as plain float64 magnitudes; units are worked out once at compile
time, and every conversion becomes a scale and an offset. Offset units (degC, degF) are
absolute temperatures: subtracting two gives a difference (``delta_degC``); adding two,
or multiplying one, is refused (convert with ``to(x, "K")`` first).
"""

from __future__ import annotations

import re

import pint

from stream0d_nb.errors import ValidationError
from stream0d_nb.units import parse_units, ureg

Unit = pint.Unit
ONE: Unit = ureg.dimensionless
UNIT_CHARS = re.compile(r"[A-Za-z0-9_ */^.()\-%°Δµ]*")


def unit_of(text: str) -> Unit:
    """The unit for a units string from a channel, a literal or a ``to()`` argument."""
    if len(text) > 100 or not UNIT_CHARS.fullmatch(text):
        raise ValidationError(f"unknown units {text!r}")
    return parse_units(text)


def fmt(u: Unit) -> str:
    """A pint-parsable, ASCII units string ("1" when dimensionless without scale)."""
    if u == ONE:
        return "1"
    text = f"{u:~C}".replace("Δ°", "delta_deg").replace("°", "deg").replace("%", "percent")
    try:
        if parse_units(text) == u:
            return text
    except ValidationError:
        pass
    return f"{u:C}"


def is_offset(u: Unit) -> bool:
    """True for absolute temperatures on an offset scale (degC, degF)."""
    return not ureg.Quantity(1.0, u)._is_multiplicative


def delta(u: Unit) -> Unit:
    """The difference unit of an offset unit (degC -> delta_degC); others unchanged."""
    if not is_offset(u):
        return u
    (name,) = u._units.keys()
    return ureg.Unit("delta_" + name)


def same_dimension(a: Unit, b: Unit) -> bool:
    """Whether values in ``a`` and ``b`` measure the same thing."""
    return bool(a.dimensionality == b.dimensionality)


def affine(src: Unit, dst: Unit) -> tuple[float, float] | None:
    """Scale and offset from ``src`` to ``dst`` (None when equal); ValidationError if not possible."""
    if src == dst:
        return None
    try:
        zero = float(ureg.Quantity(0.0, src).to(dst).magnitude)
        one = float(ureg.Quantity(1.0, src).to(dst).magnitude)
    except pint.errors.PintError as exc:
        raise ValidationError(f"units {fmt(src)!r} cannot be converted to {fmt(dst)!r}") from exc
    return one - zero, zero


def factor(src: Unit, dst: Unit) -> float:
    """The scale from ``src`` to ``dst`` for multiplicative units (e.g. kW/W -> 1: 1000)."""
    return float(ureg.Quantity(1.0, src).to(dst).magnitude)
