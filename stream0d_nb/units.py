"""Units of channels, checked and converted with pint (one shared registry).

Channels carry unit strings as written by people (``degC``, ``bar``, ``m^3/h``, ``%``);
``1`` or ``""`` mean dimensionless. Only affine conversions exist between channel units,
so a conversion is a scale and an offset applied to raw float64 values.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pint

from stream0d_nb.errors import ValidationError

ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
ureg.define("percent = 0.01 = %")
F8 = npt.NDArray[np.float64]


@lru_cache(maxsize=1024)
def parse_units(text: str) -> pint.Unit:
    """The pint unit of a unit string; ValidationError when pint does not know it."""
    t = text.strip()
    if t in ("", "1", "-"):
        return ureg.dimensionless
    try:
        return ureg.Unit(t)
    except (
        pint.errors.UndefinedUnitError,
        pint.errors.DefinitionSyntaxError,
        ValueError,
        AttributeError,
        TypeError,
    ) as exc:
        raise ValidationError(f"unknown units {text!r} ({exc})") from exc


def check_units(text: str, channel: str) -> str:
    """Validate a channel's unit string and return it unchanged."""
    try:
        parse_units(text)
    except ValidationError as exc:
        raise ValidationError(
            f"channel {channel!r}: {exc}. Use pint names such as degC, bar, "
            "m**3/h, percent, or 1 for dimensionless."
        ) from None
    return text


def conversion(src: str, dst: str) -> tuple[float, float] | None:
    """Scale and offset turning values in ``src`` into ``dst`` (None if already equal).

    Raises ValidationError when the units measure different things.
    """
    a, b = parse_units(src), parse_units(dst)
    if a == b:
        return None
    try:
        zero = ureg.Quantity(0.0, a).to(b).magnitude
        one = ureg.Quantity(1.0, a).to(b).magnitude
    except pint.errors.DimensionalityError as exc:
        raise ValidationError(f"units {src!r} cannot be converted to {dst!r}") from exc
    return float(one - zero), float(zero)


def converter(src: str, dst: str) -> Callable[[F8], F8] | None:
    """A function turning values in ``src`` into ``dst`` (None if the units are equal).

    It converts through pint itself rather than a scale and offset, which lose digits
    (71.6 degF gave 21.999999999999126 degC). ValidationError when the units measure
    different things.
    """
    if conversion(src, dst) is None:
        return None
    a, b = parse_units(src), parse_units(dst)

    def convert(values: F8) -> F8:
        return np.asarray(ureg.Quantity(values, a).to(b).magnitude, dtype=np.float64)

    return convert
