"""``compile_formula`` and ``Compiled``: the public front of the formula language."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from stream0d_nb.formulas.compiler import compile_ops
from stream0d_nb.formulas.errors import FormulaError
from stream0d_nb.formulas.grammar import parse
from stream0d_nb.formulas.limits import Limits
from stream0d_nb.formulas.ops import F8, Cache, Ctx, Op, Window, as_array
from stream0d_nb.formulas.unitrules import fmt
from stream0d_nb.specs import check_timezone


def walk(op: Op) -> Iterator[Op]:
    """Every op of a tree (iterative)."""
    stack = [op]
    while stack:
        o = stack.pop()
        yield o
        child = getattr(o, "child", None)
        if isinstance(child, Op):
            stack.append(child)
        stack.extend(getattr(o, "children", ()))


@dataclass(frozen=True)
class Compiled:
    """A checked formula: references, result units, grid and margin, ready to evaluate.

    ``range_dependent`` is True when the formula uses ``cumsum``/``integral`` without
    ``reset=``: those start from the first evaluated time, so no margin makes sub-ranges
    agree with a full evaluation.
    """

    text: str
    refs: frozenset[str]
    units: str
    interval_ns: int
    margin_ns: tuple[int, int]
    tz: str
    limits: Limits
    root: Op = field(repr=False)
    base_ns: int = 0
    range_dependent: bool = False

    def evaluate(
        self, inputs: Mapping[str, xr.DataArray], start_ns: int, end_ns: int
    ) -> xr.DataArray:
        """The result on ``[start_ns, end_ns)`` on its own grid (see the module contract)."""
        start_ns, end_ns = int(start_ns), int(end_ns)
        g = self.interval_ns
        j0 = -(-start_ns // g)
        j1 = max(-(-end_ns // g), j0)
        ctx = Ctx(self._inputs(inputs), self.base_ns, self.tz, self.limits)
        ctx.check(j1 - j0)
        ctx.deadline = time.monotonic() + self.limits.max_seconds
        with np.errstate(all="ignore"):
            values = as_array(self.root.eval(ctx, g, j0, j1), j1 - j0)
        times = (np.arange(j0, j1, dtype=np.int64) * g).astype("datetime64[ns]")
        return xr.DataArray(
            np.asarray(values, dtype=np.float64),
            dims=("time",),
            coords={"time": times},
            attrs={"units": self.units, "formula": self.text},
        )

    def evaluate_values(
        self,
        inputs: Mapping[str, tuple[F8, int]],
        i0: int,
        i1: int,
        cache: Cache | None = None,
    ) -> F8:
        """Values on grid indices ``[i0, i1)`` from (float64 values, first base-grid index).

        The fast path of :meth:`evaluate` (no DataArrays, no time limit). A ``cache`` dict
        shared by calls on the same inputs computes identical windows once.
        """
        ctx = Ctx(inputs, self.base_ns, self.tz, self.limits, cache=cache)
        ctx.check(i1 - i0)
        with np.errstate(all="ignore"):
            out = as_array(self.root.eval(ctx, self.interval_ns, i0, i1), i1 - i0)
        return np.asarray(out, dtype=np.float64)

    def _inputs(self, inputs: Mapping[str, xr.DataArray]) -> dict[str, tuple[np.ndarray, int]]:
        out: dict[str, tuple[np.ndarray, int]] = {}
        for name in self.refs:
            if name not in inputs:
                raise FormulaError(f"no input given for channel {name!r}")
            da = inputs[name]
            if da.dims != ("time",):
                raise FormulaError(f"input {name!r} must have the single dimension 'time'")
            values = np.asarray(da.values, dtype=np.float64)
            first = 0
            if values.size:
                t0 = int(
                    np.asarray(da["time"].values[:1]).astype("datetime64[ns]").astype(np.int64)[0]
                )
                if t0 % self.base_ns:
                    raise FormulaError(
                        f"input {name!r} is not on the grid of the interval ({self.base_ns} ns)"
                    )
                first = t0 // self.base_ns
            out[name] = (values, first)
        return out


def compile_formula(
    text: str,
    channels: Mapping[str, str],
    interval_ns: int,
    tz: str = "UTC",
    limits: Limits | None = None,
) -> Compiled:
    """Parse and check ``text`` against channel units and the dataset interval."""
    limits = limits or Limits()
    if not isinstance(interval_ns, int | np.integer) or interval_ns <= 0:
        raise FormulaError(f"interval must be a positive number of ns, not {interval_ns!r}")
    interval_ns = int(interval_ns)
    try:
        check_timezone(tz)
    except ValueError as exc:
        raise FormulaError(str(exc)) from None
    tree = parse(text, limits)
    root, refs = compile_ops(tree, text, channels, interval_ns, limits)
    before, after = root.margin()
    dependent = any(
        isinstance(o, Window) and o.kind in ("cumsum", "integral") and o.reset == 0
        for o in walk(root)
    )
    return Compiled(
        text=text,
        refs=refs,
        units=fmt(root.units),
        interval_ns=root.grid or interval_ns,
        margin_ns=(max(before, 0), max(after, 0)),
        tz=tz,
        limits=limits,
        root=root,
        base_ns=interval_ns,
        range_dependent=dependent,
    )
