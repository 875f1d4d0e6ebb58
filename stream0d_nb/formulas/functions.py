"""The function table: every callable name of the language, its parameters and builder.

Each builder checks arguments and units at compile time and returns ops; nothing else
can be called. ``SIGNATURES`` is what error messages and the docs show.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from stream0d_nb.formulas import checks
from stream0d_nb.formulas.checks import Site
from stream0d_nb.formulas.errors import FormulaError
from stream0d_nb.formulas.kernels import TIME_FIELDS
from stream0d_nb.formulas.limits import Limits
from stream0d_nb.formulas.nodes import Call, Node, Text
from stream0d_nb.formulas.ops import Const, Op, Resample, Shifted, TimeField, Window
from stream0d_nb.formulas.unitrules import ONE, delta, fmt, unit_of, ureg
from stream0d_nb.specs import format_duration, parse_duration

AGGREGATIONS = ("mean", "sum", "min", "max", "count", "first", "last", "twmean")
REQUIRED = object()


@dataclass
class Binder:
    """Arguments of one call, bound to parameter names, with typed accessors."""

    call: Call
    text: str
    params: tuple[tuple[str, object], ...]
    compile: Callable[[Node], Op]
    base_ns: int
    limits: Limits
    bound: dict[str, Node | None] = field(default_factory=dict)

    @property
    def site(self) -> Site:
        """The call's position for error messages."""
        return Site(self.text, self.call.pos)

    def fail(self, message: str, node: Node | None = None) -> FormulaError:
        """An error at the call (or at one argument)."""
        pos = node.pos if node is not None else self.call.pos
        return FormulaError(f"{self.call.name}(): {message}", self.text, pos.line, pos.column)

    def bind(self) -> Binder:
        """Match positional and keyword arguments to the parameters."""
        names = [p for p, _ in self.params]
        variadic = names and names[-1] == "*"
        if len(self.call.args) > len(names) and not variadic:
            raise self.fail(f"takes at most {len(names)} arguments: {signature(self.call.name)}")
        for i, arg in enumerate(self.call.args):
            self.bound[names[min(i, len(names) - 1)] + (f"{i}" if variadic else "")] = arg
        for key, arg, pos in self.call.kwargs:
            if key not in names or key == "*":
                raise FormulaError(
                    f"{self.call.name}(): unknown argument {key!r}; {signature(self.call.name)}",
                    self.text,
                    pos.line,
                    pos.column,
                )
            if key in self.bound:
                raise self.fail(f"argument {key!r} given twice")
            self.bound[key] = arg
        for name, default in self.params:
            if name != "*" and name not in self.bound:
                if default is REQUIRED:
                    raise self.fail(f"missing argument {name!r}: {signature(self.call.name)}")
                self.bound[name] = None
        return self

    def node(self, name: str) -> Node | None:
        """The raw argument node (None when not given)."""
        return self.bound.get(name)

    def expr(self, name: str) -> Op:
        """An expression argument, compiled."""
        node = self.bound[name]
        if node is None:
            raise self.fail(f"missing argument {name!r}")
        if isinstance(node, Text):
            raise self.fail(f"argument {name!r} must be an expression, not a string", node)
        return self.compile(node)

    def variadic(self) -> list[Op]:
        """All positional arguments of a variadic function, compiled."""
        return [self.compile(a) for a in self.call.args if not isinstance(a, Text)]

    def string(self, name: str, choices: tuple[str, ...] | None = None) -> str | None:
        """A string argument (None when not given), optionally one of ``choices``."""
        node = self.bound[name]
        if node is None:
            return None
        if not isinstance(node, Text):
            raise self.fail(f'argument {name!r} must be a "string"', node)
        if choices is not None and node.value not in choices:
            raise self.fail(f"{name}={node.value!r} unknown; use one of {', '.join(choices)}", node)
        return node.value

    def duration(
        self, name: str, grid: int, *, multiple: bool = False, signed: bool = False
    ) -> int:
        """A duration argument in ns, bounded by the window limit, as whole grid steps."""
        node = self.bound[name]
        text = self.string(name)
        if text is None or node is None:
            raise self.fail(f'missing duration {name!r} (e.g. "1h")')
        ns = parse_duration(text)
        if ns is None:
            raise self.fail(f"{name}={text!r} is not a duration (try '30s', '5min', '1h')", node)
        if ns == 0 or (ns < 0 and not signed):
            raise self.fail(f"{name}={text!r} must be positive", node)
        if abs(ns) > self.limits.max_window_ns:
            raise self.fail(
                f"{name}={text!r} is longer than the limit of "
                f"{format_duration(self.limits.max_window_ns)}",
                node,
            )
        if multiple and ns % grid:
            raise self.fail(
                f"{name}={text!r} must be a multiple of the interval {format_duration(grid)}", node
            )
        return ns

    def grid(self, op: Op) -> int:
        """The grid an argument is evaluated on (the dataset's when it follows the caller)."""
        return op.grid if op.grid is not None else self.base_ns


Builder = Callable[[Binder], Op]
FUNCTIONS: dict[str, tuple[tuple[tuple[str, object], ...], Builder]] = {}


def signature(name: str) -> str:
    """``name(a, b=...)`` as shown in messages."""
    params, _ = FUNCTIONS[name]
    parts = ["..." if p == "*" else (p if d is REQUIRED else f"{p}=...") for p, d in params]
    return f"{name}({', '.join(parts)})"


def function(name: str, *params: str | tuple[str, object]) -> Callable[[Builder], Builder]:
    """Register a builder under ``name`` with its parameters (``(name, default)`` optional)."""

    def deco(fn: Builder) -> Builder:
        spec = tuple(p if isinstance(p, tuple) else (p, REQUIRED) for p in params)
        FUNCTIONS[name] = (spec, fn)
        return fn

    return deco


# --- elementwise ---------------------------------------------------------------------------


def _unary_same(name: str) -> None:
    @function(name, "x")
    def build(b: Binder) -> Op:
        x = b.expr("x")
        return checks.make_map(name, [x], x.units, b.site)


for _n in ("abs",):
    _unary_same(_n)


@function("sqrt", "x")
def _sqrt(b: Binder) -> Op:
    x = b.expr("x")
    checks.no_offset(x, b.site, "sqrt")
    return checks.make_map("sqrt", [x], x.units**0.5, b.site)


def _unary_plain(name: str) -> None:
    @function(name, "x")
    def build(b: Binder) -> Op:
        x = checks.dimensionless(b.expr("x"), b.site, f"{name}()")
        return checks.make_map(name, [x], ONE, b.site)


for _n in ("exp", "log", "log10"):
    _unary_plain(_n)


@function("isnan", "x")
def _isnan(b: Binder) -> Op:
    return checks.make_map("isnan", [b.expr("x")], ONE, b.site, boolean=True)


@function("round", "x", ("digits", None))
def _round(b: Binder) -> Op:
    x = b.expr("x")
    digits = Const(ONE, None, value=0.0, bare=True)
    if b.node("digits") is not None:
        d = b.expr("digits")
        if not isinstance(d, Const) or d.value != int(d.value) or abs(d.value) > 15:
            raise b.fail("digits must be a whole constant between -15 and 15")
        digits = d
    return checks.make_map("round", [x, digits], x.units, b.site)


def _variadic(name: str) -> None:
    @function(name, "*")
    def build(b: Binder) -> Op:
        ops = b.variadic()
        if len(ops) < 2:
            raise b.fail(
                "needs at least two values (elementwise); for a window use "
                f'rolling_{name}(x, "1h"), for bins resample(x, "1h", "{name}")'
            )
        ops, units = checks.common(ops, b.site, f"{name}()")
        return checks.make_map(name, ops, units, b.site)


for _n in ("min", "max", "mean"):
    _variadic(_n)


@function("clip", "x", ("lo", None), ("hi", None))
def _clip(b: Binder) -> Op:
    inf = math.inf
    lo = b.expr("lo") if b.node("lo") is not None else Const(ONE, None, value=-inf, bare=True)
    hi = b.expr("hi") if b.node("hi") is not None else Const(ONE, None, value=inf, bare=True)
    ops, units = checks.common([b.expr("x"), lo, hi], b.site, "clip()")
    return checks.make_map("clip", ops, units, b.site)


@function("between", "x", "lo", "hi")
def _between(b: Binder) -> Op:
    ops, _ = checks.common([b.expr("x"), b.expr("lo"), b.expr("hi")], b.site, "between()")
    return checks.make_map("between", ops, ONE, b.site, boolean=True)


@function("if", "cond", "then", "else")
def _if(b: Binder) -> Op:
    c = checks.condition(b.expr("cond"), b.site, "if() condition")
    (x, y), units = checks.common([b.expr("then"), b.expr("else")], b.site, "if()")
    return checks.make_map("if", [c, x, y], units, b.site, boolean=x.boolean and y.boolean)


def _where(name: str) -> None:
    @function(name, "x", "cond", ("other", None))
    def build(b: Binder) -> Op:
        c = checks.condition(b.expr("cond"), b.site, f"{name}() condition")
        other = (
            b.expr("other")
            if b.node("other") is not None
            else Const(ONE, None, value=math.nan, bare=True)
        )
        (x, o), units = checks.common([b.expr("x"), other], b.site, f"{name}()")
        return checks.make_map(name, [x, c, o], units, b.site)


for _n in ("where", "mask"):
    _where(_n)


@function("to", "x", "units")
def _to(b: Binder) -> Op:
    x = b.expr("x")
    text = b.string("units") or ""
    try:
        dst = unit_of(text)
    except Exception:
        raise b.fail(f"unknown units {text!r}", b.node("units")) from None
    if not checks.same_dimension(x.units, dst):
        raise b.fail(f"cannot convert {fmt(x.units)!r} to {fmt(dst)!r} (different dimensions)")
    return checks.convert(x, dst, b.site, "to()")


# --- time ------------------------------------------------------------------------------------


def _time(name: str) -> None:
    @function(name)
    def build(b: Binder) -> Op:
        return TimeField(ONE, None, field=name)


for _n in TIME_FIELDS:
    _time(_n)


# --- windows ---------------------------------------------------------------------------------


def _steps(ns: int, grid: int) -> int:
    return max(1, -(-ns // grid))


def _rolling(how: str) -> None:
    @function(f"rolling_{how}", "x", "window")
    def build(b: Binder) -> Op:
        x = b.expr("x")
        g = b.grid(x)
        k = _steps(b.duration("window", g), g)
        units = x.units
        if how == "sum":
            checks.no_offset(x, b.site, "rolling_sum")
        if how == "std":
            units = delta(units)
        return Window(units, g, child=x, kind="rolling", how=how, k=k, before=k - 1)


for _n in ("mean", "min", "max", "std", "sum"):
    _rolling(_n)


def _stat(name: str) -> None:
    @function(name, "x", "window")
    def build(b: Binder) -> Op:
        x = b.expr("x")
        g = b.grid(x)
        k = _steps(b.duration("window", g), g)
        units = {"pct_good": ureg.percent, "zscore": ONE, "mad": delta(x.units)}[name]
        if name == "mad" and k * k > b.limits.max_window_work:
            raise b.fail(
                f"a window of {k:,} samples is too expensive for mad() (limit "
                f"{math.isqrt(b.limits.max_window_work):,}): resample first"
            )
        return Window(units, g, child=x, kind=name, k=k, before=k - 1)


for _n in ("pct_good", "zscore", "mad"):
    _stat(_n)


@function("resample", "x", "interval", ("how", None))
def _resample(b: Binder) -> Op:
    x = b.expr("x")
    g = b.grid(x)
    step = b.duration("interval", g, multiple=True)
    how = b.string("how", AGGREGATIONS) or "mean"
    units = ONE if how == "count" else x.units
    if how == "sum":
        checks.no_offset(x, b.site, "a sum")
    return Resample(units, step, child=x, child_grid=g, how=how)


@function("shift", "x", "by")
def _shift(b: Binder) -> Op:
    x = b.expr("x")
    g = b.grid(x)
    ns = b.duration("by", g, multiple=True, signed=True)
    return Shifted(x.units, g, child=x, steps=ns // g, boolean=x.boolean)


@function("diff", "x")
def _diff(b: Binder) -> Op:
    x = b.expr("x")
    g = b.grid(x)
    return Window(delta(x.units), g, child=x, kind="diff", before=1)


@function("rate", "x")
def _rate(b: Binder) -> Op:
    x = b.expr("x")
    g = b.grid(x)
    units = delta(x.units) / ureg.second
    return Window(units, g, child=x, kind="diff", before=1, scale=1e9 / g)


def _accumulate(name: str) -> None:
    @function(name, "x", ("reset", None))
    def build(b: Binder) -> Op:
        x = b.expr("x")
        checks.no_offset(x, b.site, name)
        g = b.grid(x)
        reset = 0
        if b.node("reset") is not None:
            reset = b.duration("reset", g, multiple=True) // g
        units = x.units * ureg.second if name == "integral" else x.units
        return Window(units, g, child=x, kind=name, reset=reset, before=max(reset - 1, 0))


for _n in ("cumsum", "integral"):
    _accumulate(_n)


@function("fill", "x", "method", ("limit", None))
def _fill(b: Binder) -> Op:
    x = b.expr("x")
    g = b.grid(x)
    method = b.node("method")
    if isinstance(method, Text):
        how = b.string("method", ("ffill", "bfill"))
        if b.node("limit") is None:
            raise b.fail(
                f'{how} needs limit= (e.g. limit="10min") so that results do not depend '
                "on the time range read"
            )
        k = b.duration("limit", g) // g
        if how == "ffill":
            return Window(x.units, g, child=x, kind="ffill", k=k, before=k)
        return Window(x.units, g, child=x, kind="bfill", k=k, after=k)
    if b.node("limit") is not None:
        raise b.fail("limit= applies to ffill and bfill only")
    value = b.expr("method")
    (x, v), units = checks.common([x, value], b.site, "fill()")
    isnan = checks.make_map("isnan", [x], ONE, b.site, boolean=True)
    return checks.make_map("mask", [x, isnan, v], units, b.site)


@function("interpolate", "x", ("limit", REQUIRED))
def _interpolate(b: Binder) -> Op:
    x = b.expr("x")
    g = b.grid(x)
    k = b.duration("limit", g) // g
    return Window(x.units, g, child=x, kind="interpolate", k=k, before=k + 1, after=k + 1)


NAMES = tuple(sorted(FUNCTIONS))
