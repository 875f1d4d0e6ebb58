"""Type and unit rules applied while compiling: each returns ops with conversions inserted.

``Site`` carries the formula text and a node position so that every refusal shows a
caret. A constant written without units is *bare*: next to a quantity it takes that
quantity's units (``{T} > 80`` means 80 in T's units; ``{T} + 5`` with T in degC adds
5 delta_degC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream0d_nb.errors import ValidationError
from stream0d_nb.formulas.errors import FormulaError
from stream0d_nb.formulas.limits import Limits
from stream0d_nb.formulas.nodes import Pos
from stream0d_nb.formulas.ops import Const, Convert, Ctx, Map, Op
from stream0d_nb.formulas.unitrules import (
    ONE,
    Unit,
    affine,
    delta,
    factor,
    fmt,
    is_offset,
    same_dimension,
)

_NO_LIMITS = Limits()


@dataclass(frozen=True)
class Site:
    """A place in the formula for error messages."""

    text: str
    pos: Pos

    def fail(self, message: str) -> FormulaError:
        """A FormulaError pointing at this place."""
        return FormulaError(message, self.text, self.pos.line, self.pos.column)


def convert(op: Op, dst: Unit, site: Site, what: str) -> Op:
    """``op`` expressed in ``dst`` (bare constants simply take ``dst``)."""
    if isinstance(op, Const) and op.bare:
        return Const(dst, op.grid, value=op.value, bare=True, boolean=op.boolean)
    if op.units == dst:
        return op
    try:
        conv = affine(op.units, dst)
    except ValidationError:
        raise site.fail(
            f"{what}: units {fmt(op.units)!r} and {fmt(dst)!r} are not compatible"
        ) from None
    if conv is None:
        return op
    scale, offset = conv
    return fold(Convert(dst, op.grid, child=op, scale=scale, offset=offset), site)


def grid_of(ops: list[Op], site: Site) -> int | None:
    """The common grid of operands (None when all follow the caller's)."""
    grids = {o.grid for o in ops if o.grid is not None}
    if len(grids) > 1:
        a, b = sorted(grids)
        raise site.fail(
            f"operands are on different time grids ({a / 1e9:g} s and {b / 1e9:g} s): "
            "resample them to the same interval first"
        )
    return grids.pop() if grids else None


def fold(op: Op, site: Site) -> Op:
    """Compute an op of constants now (overflow and division by zero are refused)."""
    children = getattr(op, "children", None)
    if children is None and isinstance(op, Convert):
        children = (op.child,)
    if not children or not all(isinstance(c, Const) for c in children):
        return op
    try:
        with np.errstate(all="raise"):
            value = op.run(Ctx({}, 1, "UTC", _NO_LIMITS), 1, 0, 1)
    except (FloatingPointError, OverflowError, ValueError, ZeroDivisionError) as exc:
        raise site.fail(f"constant expression cannot be computed ({exc})") from None
    v = float(np.asarray(value))
    if not np.isfinite(v):
        raise site.fail("constant expression is not a finite number")
    bare = all(isinstance(c, Const) and c.bare for c in children) and not op.boolean
    return Const(op.units, None, value=v, bare=bare, boolean=op.boolean)


def make_map(fn: str, children: list[Op], units: Unit, site: Site, boolean: bool = False) -> Op:
    """An elementwise op on a common grid, folded when all children are constants."""
    grid = grid_of(children, site)
    return fold(Map(units, grid, fn=fn, children=tuple(children), boolean=boolean), site)


def no_offset(op: Op, site: Site, what: str) -> None:
    """Refuse absolute temperatures (degC, degF) where only differences make sense."""
    if is_offset(op.units):
        raise site.fail(
            f"{what} of an absolute temperature in {fmt(op.units)!r} is ambiguous: "
            f'convert with to(x, "K") or use a difference'
        )


def common(ops: list[Op], site: Site, what: str) -> tuple[list[Op], Unit]:
    """Operands in the units of the first one with units (comparisons, min, if, ...)."""
    ref = next((o for o in ops if not (isinstance(o, Const) and o.bare)), ops[0])
    units = ONE if isinstance(ref, Const) and ref.bare else ref.units
    for o in ops:
        if not (isinstance(o, Const) and o.bare) and not same_dimension(o.units, units):
            raise site.fail(
                f"{what}: cannot combine {fmt(units)!r} with {fmt(o.units)!r} "
                "(different dimensions)"
            )
    return [convert(o, units, site, what) for o in ops], units


def additive(op: str, a: Op, b: Op, site: Site) -> Op:
    """``a + b`` or ``a - b`` with the offset-unit rules of the module docstring."""
    bare_a = isinstance(a, Const) and a.bare
    bare_b = isinstance(b, Const) and b.bare
    ua, ub = a.units, b.units
    if bare_a and bare_b:
        return make_map(op, [a, b], ONE, site)
    if bare_b:  # x + 5, x - 5: a difference next to an absolute temperature
        return make_map(op, [a, convert(b, delta(ua), site, op)], ua, site)
    if bare_a:  # 5 + x: a difference; 5 - x: an absolute value minus x
        if op == "+":
            return make_map(op, [convert(a, delta(ub), site, op), b], ub, site)
        # the constant takes x's units; no longer bare, so this does not come back here
        assert isinstance(a, Const)
        return additive(
            op, Const(ub, a.grid, value=a.value, bare=False, boolean=a.boolean), b, site
        )
    if not same_dimension(ua, ub):
        raise site.fail(
            f"cannot {'add' if op == '+' else 'subtract'} {fmt(ub)!r} "
            f"{'to' if op == '+' else 'from'} {fmt(ua)!r} (different dimensions)"
        )
    if is_offset(ua) or is_offset(ub):
        a_abs, b_abs = _absolute(ua), _absolute(ub)
        if a_abs and b_abs:
            if op == "+":
                raise site.fail(
                    f"cannot add two absolute temperatures ({fmt(ua)!r} + {fmt(ub)!r}): "
                    "use mean(a, b) for an average, or subtract to get a difference"
                )
            target = ua if is_offset(ua) else ub
            return make_map(
                "-",
                [convert(a, target, site, op), convert(b, target, site, op)],
                delta(target),
                site,
            )
        if a_abs:
            return make_map(op, [a, convert(b, delta(ua), site, op)], ua, site)
        if op == "-":
            raise site.fail(
                f"cannot subtract an absolute temperature {fmt(ub)!r} from a difference {fmt(ua)!r}"
            )
        return make_map(op, [convert(a, delta(ub), site, op), b], ub, site)
    return make_map(op, [a, convert(b, ua, site, op)], ua, site)


def _absolute(u: Unit) -> bool:
    """Absolute temperatures: offset units and kelvin/rankine (not delta_ units)."""
    return bool(
        is_offset(u) or (u.dimensionality == {"[temperature]": 1} and "delta" not in str(u))
    )


def multiplicative(op: str, a: Op, b: Op, site: Site) -> Op:
    """``a * b`` or ``a / b``: units multiply; absolute temperatures refused."""
    for o in (a, b):
        no_offset(o, site, "multiplication" if op == "*" else "division")
    units = a.units * b.units if op == "*" else a.units / b.units
    return make_map(op, [a, b], units, site)


def dimensionless(op: Op, site: Site, what: str) -> Op:
    """``op`` as a plain number: dimensionless units are scaled to 1 (kW/W -> x1000)."""
    if op.units == ONE:
        return op
    if not op.units.dimensionless:
        raise site.fail(f"{what} needs a dimensionless value, not {fmt(op.units)!r}")
    f = factor(op.units, ONE)
    return fold(Convert(ONE, op.grid, child=op, scale=f), site)


def condition(op: Op, site: Site, what: str) -> Op:
    """A condition: a boolean, or a dimensionless number (non-zero is true)."""
    if op.boolean:
        return op
    return dimensionless(op, site, what)


def power(a: Op, b: Op, site: Site) -> Op:
    """``a ** b``: with units, the exponent must be a constant (at most 64 in size)."""
    b = dimensionless(b, site, "an exponent")
    if a.units == ONE or (isinstance(a, Const) and a.bare) or a.units.dimensionless:
        a = dimensionless(a, site, "a base with a variable exponent")
        return make_map("**", [a, b], ONE, site)
    no_offset(a, site, "a power")
    if not isinstance(b, Const):
        raise site.fail(f"the exponent of a value in {fmt(a.units)!r} must be a constant")
    if abs(b.value) > 64:
        raise site.fail(f"exponent {b.value:g} too large for a value with units")
    return make_map("**", [a, b], a.units**b.value, site)
