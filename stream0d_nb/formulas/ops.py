"""Evaluation ops: the allowlist of what a compiled formula can do.

A compiled formula is a tree of these ops, each with its units, grid and margin worked
out at compile time. ``Op.eval(ctx, grid, i0, i1)`` returns the values at grid indices
``[i0, i1)`` (times ``i * grid`` ns since the epoch), asking children for exactly the
ranges they need, so a window reads its margin and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt

from stream0d_nb.formulas import kernels
from stream0d_nb.formulas.errors import FormulaError
from stream0d_nb.formulas.limits import Limits
from stream0d_nb.formulas.unitrules import ONE, Unit

F8 = npt.NDArray[np.float64]
Value = F8 | float
# Shared window results of one evaluation: (op key, grid) -> (first index, values).
Cache = dict[tuple[Hashable, int], tuple[int, F8]]


@dataclass
class Ctx:
    """One evaluation: inputs as (values, first base-grid index), zone, limits, deadline."""

    inputs: Mapping[str, tuple[F8, int]]
    base_ns: int
    tz: str
    limits: Limits
    deadline: float = field(default=0.0)
    cache: Cache | None = None  # for one set of inputs, zone and base grid only

    def check(self, n: int = 0) -> None:
        """Refuse arrays over the size limit and evaluations over the time limit."""
        if n > self.limits.max_values:
            raise FormulaError(
                f"evaluation needs {n:,} values, over the limit of {self.limits.max_values:,}: "
                "narrow the time range or resample"
            )
        if self.deadline and time.monotonic() > self.deadline:
            raise FormulaError(
                f"evaluation took longer than {self.limits.max_seconds:g} s and was stopped"
            )


@dataclass(eq=False)
class Op:
    """Base op: units of its values, whether boolean, its grid (None: the caller's)."""

    units: Unit
    grid: int | None
    boolean: bool = field(default=False, kw_only=True)

    def margin(self) -> tuple[int, int]:
        """Data needed before and after the output range (ns; may be negative)."""
        return 0, 0

    def eval(self, ctx: Ctx, g: int, i0: int, i1: int) -> Value:
        """Values at grid ``g`` indices ``[i0, i1)`` (a float for constants).

        With ``ctx.cache``, window and resample results are shared between identical ops
        (same :meth:`key`): a range inside one already computed is a slice of it.
        """
        ctx.check(i1 - i0)
        if ctx.cache is None or not self.shareable():
            return self.run(ctx, g, i0, i1)
        ck = (self.key(), g)
        hit = ctx.cache.get(ck)
        if hit is not None and hit[0] <= i0 and i1 - hit[0] <= hit[1].size:
            return hit[1][i0 - hit[0] : i1 - hit[0]]  # a view: ops never write into children
        out = self.run(ctx, g, i0, i1)
        if (
            isinstance(out, np.ndarray)
            and out.shape == (i1 - i0,)
            and (hit is None or out.size >= hit[1].size)
        ):
            ctx.cache[ck] = (i0, out)
        return out

    def shareable(self) -> bool:
        """Whether results are worth sharing and independent of the range asked for."""
        return False

    def key(self) -> Hashable:
        """What the values depend on: the op type, its parameters and its children's keys."""
        k = self.__dict__.get("_key")
        if k is None:
            parts: list[Hashable] = [type(self).__name__]
            for f in fields(self):
                if f.name != "units":
                    parts.append(_key_part(getattr(self, f.name)))
            k = self.__dict__["_key"] = tuple(parts)
        return k

    def range_free(self) -> bool:
        """Values at a time do not depend on where the evaluated range starts."""
        for o in (getattr(self, "child", None), *getattr(self, "children", ())):
            if isinstance(o, Op) and not o.range_free():
                return False
        return True

    def run(self, ctx: Ctx, g: int, i0: int, i1: int) -> Value:  # pragma: no cover
        raise NotImplementedError


def _key_part(v: object) -> Hashable:
    """A field of an op in its key (floats by their bits: 0.0 and -0.0 differ)."""
    if isinstance(v, Op):
        return v.key()
    if isinstance(v, tuple):
        return tuple(_key_part(x) for x in v)
    if isinstance(v, float):
        return ("f", float.hex(v))
    assert isinstance(v, Hashable)
    return v


def as_array(v: Value, n: int) -> F8:
    """A float64 array of ``n`` values (a constant is broadcast)."""
    if isinstance(v, np.ndarray):
        return v
    return np.full(n, float(v))


@dataclass(eq=False)
class Const(Op):
    """A constant; ``bare`` when written without units (it then adopts its partner's)."""

    value: float = 0.0
    bare: bool = False

    def run(self, ctx: Ctx, g: int, i0: int, i1: int) -> Value:
        return self.value


@dataclass(eq=False)
class Channel(Op):
    """The values of an input channel (NaN outside what was given)."""

    name: str = ""

    def run(self, ctx: Ctx, g: int, i0: int, i1: int) -> Value:
        values, first = ctx.inputs[self.name]
        if first <= i0 and i1 <= first + values.size:
            return values[i0 - first : i1 - first]  # a view: ops never write into children
        out = np.full(i1 - i0, np.nan)
        lo, hi = max(i0, first), min(i1, first + values.size)
        if hi > lo:
            out[lo - i0 : hi - i0] = values[lo - first : hi - first]
        return out


@dataclass(eq=False)
class Convert(Op):
    """``x * scale + offset``: a unit conversion decided at compile time."""

    child: Op = field(default_factory=lambda: Const(ONE, None))
    scale: float = 1.0
    offset: float = 0.0

    def margin(self) -> tuple[int, int]:
        return self.child.margin()

    def run(self, ctx: Ctx, g: int, i0: int, i1: int) -> Value:
        v = self.child.eval(ctx, g, i0, i1)
        if self.scale != 1.0:
            v = v * self.scale
        return v + self.offset if self.offset else v


def _nan_any(*vals: Value) -> npt.NDArray[np.bool_] | bool:
    out: npt.NDArray[np.bool_] | bool = False
    for v in vals:
        out = out | np.isnan(v)
    return out


def _cmp(fn: Callable[[Value, Value], object]) -> Callable[..., Value]:
    def run(a: Value, b: Value) -> Value:
        return np.where(_nan_any(a, b), np.nan, np.asarray(fn(a, b), dtype=np.float64))

    return run


def _and(a: Value, b: Value) -> Value:
    false = (a == 0) | (b == 0)
    return np.where(false, 0.0, np.where(_nan_any(a, b), np.nan, 1.0))


def _or(a: Value, b: Value) -> Value:
    true = ((a != 0) & ~np.isnan(a)) | ((b != 0) & ~np.isnan(b))
    return np.where(true, 1.0, np.where(_nan_any(a, b), np.nan, 0.0))


def _not(a: Value) -> Value:
    return np.where(np.isnan(a), np.nan, np.asarray(a == 0, dtype=np.float64))


def _if(c: Value, a: Value, b: Value) -> Value:
    return np.where(np.isnan(c), np.nan, np.where(c != 0, a, b))


def _where(x: Value, c: Value, other: Value) -> Value:
    return np.where(np.isnan(c) | (c == 0), other, x)


def _mask(x: Value, c: Value, other: Value) -> Value:
    return np.where(~np.isnan(c) & (c != 0), other, x)


def _between(x: Value, lo: Value, hi: Value) -> Value:
    return np.where(_nan_any(x, lo, hi), np.nan, np.asarray((x >= lo) & (x <= hi), np.float64))


def _clip(x: Value, lo: Value, hi: Value) -> Value:
    return np.where(np.isnan(x), np.nan, np.fmin(np.fmax(x, lo), hi))


def _round(x: Value, n: Value) -> Value:
    return np.round(x, int(n))


def _reduce_args(fn: Callable[[Value, Value], Value]) -> Callable[..., Value]:
    def run(*vals: Value) -> Value:
        out = vals[0]
        for v in vals[1:]:
            out = fn(out, v)
        return out

    return run


def _mean(*vals: Value) -> Value:
    total: Value = 0.0
    for v in vals:
        total = total + v
    return total / len(vals)


# The elementwise allowlist: names used by the compiler -> numpy callables.
ELEMENTWISE: dict[str, Callable[..., Value]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
    "%": np.fmod,
    "**": np.power,
    "neg": np.negative,
    "<": _cmp(np.less),
    "<=": _cmp(np.less_equal),
    ">": _cmp(np.greater),
    ">=": _cmp(np.greater_equal),
    "==": _cmp(np.equal),
    "!=": _cmp(np.not_equal),
    "and": _and,
    "or": _or,
    "not": _not,
    "if": _if,
    "where": _where,
    "mask": _mask,
    "between": _between,
    "clip": _clip,
    "abs": np.abs,
    "sqrt": np.sqrt,
    "exp": np.exp,
    "log": np.log,
    "log10": np.log10,
    "round": _round,
    "min": _reduce_args(np.minimum),
    "max": _reduce_args(np.maximum),
    "mean": _mean,
    "isnan": lambda x: np.asarray(np.isnan(x), dtype=np.float64),
}


# Arithmetic that may write into its left operand when that is a temporary.
INPLACE: dict[str, np.ufunc] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
}


@dataclass(eq=False)
class Map(Op):
    """An elementwise function of its children (all on the same grid)."""

    fn: str = "+"
    children: tuple[Op, ...] = ()

    def margin(self) -> tuple[int, int]:
        ms = [c.margin() for c in self.children] or [(0, 0)]
        return max(m[0] for m in ms), max(m[1] for m in ms)

    def run(self, ctx: Ctx, g: int, i0: int, i1: int) -> Value:
        vals = [c.eval(ctx, g, i0, i1) for c in self.children]
        ctx.check(i1 - i0)
        first = vals[0]
        if (
            self.fn in INPLACE
            and isinstance(self.children[0], Map)  # a Map's result is a fresh array we own
            and isinstance(first, np.ndarray)
            and first.shape == (i1 - i0,)
        ):
            return INPLACE[self.fn](first, vals[1], out=first)
        out = ELEMENTWISE[self.fn](*vals)
        if isinstance(out, np.ndarray) and out.ndim == 0:
            return float(out)
        return out


@dataclass(eq=False)
class Window(Op):
    """Ops over a child on grid ``grid`` with a margin of ``before``/``after`` samples."""

    child: Op = field(default_factory=lambda: Const(ONE, None))
    kind: str = "rolling"
    how: str = "mean"
    before: int = 0  # samples of the child needed before the output range
    after: int = 0  # samples after
    k: int = 1  # window length or limit in samples
    reset: int = 0  # cumsum/integral: reset period in samples (0: from the range start)
    scale: float = 1.0  # diff: 1; rate: 1 / seconds per step

    def margin(self) -> tuple[int, int]:
        b, a = self.child.margin()
        g = self.grid or 0
        return b + self.before * g, a + self.after * g

    def shareable(self) -> bool:
        return self.range_free()

    def range_free(self) -> bool:
        if self.kind in ("cumsum", "integral") and self.reset == 0:
            return False  # from the first evaluated time
        return self.child.range_free()

    def run(self, ctx: Ctx, g: int, i0: int, i1: int) -> Value:
        size = i1 - i0 + self.before + self.after
        ctx.check(size)
        a = as_array(self.child.eval(ctx, g, i0 - self.before, i1 + self.after), size)
        n, kind = i1 - i0, self.kind
        if kind == "rolling":
            return kernels.rolling(a, self.k, self.how)
        if kind == "pct_good":
            return kernels.window_count(a, self.k) * (100.0 / self.k)
        if kind == "zscore":
            m = kernels.rolling(a, self.k, "mean")
            s = kernels.rolling(a, self.k, "std")
            with np.errstate(divide="ignore", invalid="ignore"):
                z = (a[self.k - 1 :] - m) / s
            return np.where(s > 0, z, np.nan)  # a flat window has no spread: no score
        if kind == "mad":
            return kernels.mad(a, self.k, ctx.check)
        if kind == "diff":
            return (a[1:] - a[:-1]) * self.scale
        if kind == "ffill":
            return kernels.ffill(a, self.k)[self.before :]
        if kind == "bfill":
            return kernels.bfill(a, self.k)[: a.size - self.after]
        if kind == "interpolate":
            return kernels.interpolate(a, self.k)[self.before : self.before + n]
        if kind == "cumsum":
            return kernels.cumsum(a, i0 - self.before, self.reset)[self.before :]
        if kind == "integral":
            return kernels.integral(a, i0 - self.before, self.reset, g / 1e9)[self.before :]
        raise FormulaError(f"unknown window op {kind!r}")  # pragma: no cover


@dataclass(eq=False)
class Shifted(Op):
    """``shift``: values ``steps`` samples earlier (positive) or later (negative)."""

    child: Op = field(default_factory=lambda: Const(ONE, None))
    steps: int = 0

    def margin(self) -> tuple[int, int]:
        b, a = self.child.margin()
        g = self.grid or 0
        return b + self.steps * g, a - self.steps * g

    def run(self, ctx: Ctx, g: int, i0: int, i1: int) -> Value:
        return self.child.eval(ctx, g, i0 - self.steps, i1 - self.steps)


@dataclass(eq=False)
class Resample(Op):
    """Aggregation to the coarser grid ``grid`` from the child's grid (epoch-aligned bins)."""

    child: Op = field(default_factory=lambda: Const(ONE, None))
    child_grid: int = 1
    how: str = "mean"

    def margin(self) -> tuple[int, int]:
        b, a = self.child.margin()
        return b, a + (self.grid or 0) - self.child_grid

    def shareable(self) -> bool:
        return self.range_free()

    def run(self, ctx: Ctx, g: int, i0: int, i1: int) -> Value:
        k = g // self.child_grid
        n = (i1 - i0) * k
        ctx.check(n)
        a = as_array(self.child.eval(ctx, self.child_grid, i0 * k, i1 * k), n)
        return kernels.resample(a, k, self.how) if n else np.empty(0)


@dataclass(eq=False)
class TimeField(Op):
    """A calendar field of each sample's time in the dataset's time zone."""

    field: str = "hour"

    def run(self, ctx: Ctx, g: int, i0: int, i1: int) -> Value:
        times = np.arange(i0, i1, dtype=np.int64) * g
        return kernels.time_field(times, ctx.tz, self.field)
