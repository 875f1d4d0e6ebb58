"""Derived channels: formulas saved per dataset that read like channels everywhere.

This layer sits above the store and the formula language (DESIGN §1): it keeps formulas in
the registry, checks them on save (syntax, missing channels, units, cycles), and
evaluates them lazily on read with enough margin before and after the range that results
on a sub-range equal the same slice of a full evaluation.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import numpy as np
import xarray as xr

from stream0d_nb.errors import (
    ChannelNotFoundError,
    ConfirmationRequiredError,
    Fix,
    ValidationError,
)
from stream0d_nb.formulas import Compiled, compile_formula
from stream0d_nb.specs import FormulaSpec, IngestReport, format_duration
from stream0d_nb.store import Store
from stream0d_nb.store.grid import to_ns
from stream0d_nb.store.reader import aggregate, bin_steps, index_range
from stream0d_nb.store.repo import AsOf, Snapshot


class DerivedContext:
    """Everything needed to compile and evaluate a dataset's formulas at one snapshot."""

    def __init__(
        self,
        store: Store,
        dataset_id: str,
        as_of: AsOf = None,
        formulas: Iterable[FormulaSpec] | None = None,
    ) -> None:
        self.store = store
        self.dataset_id = dataset_id
        self.snap: Snapshot = store.data(dataset_id).snapshot(as_of)
        self.tz = store.zone(dataset_id)
        self.formulas = {
            f.name: f
            for f in (
                formulas if formulas is not None else store.registry.list_formulas(dataset_id)
            )
        }
        self.materialized = {
            n for n, a in self.snap.channels.items() if MATERIALIZED_TAG in (a.get("tags") or [])
        }
        self.raw_units = {
            n: str(a.get("units", ""))
            for n, a in self.snap.channels.items()
            if n not in self.materialized
        }
        self._compiled: dict[str, Compiled] = {}
        self._held: dict[tuple[str, int, int], int] = {}

    def units_map(self) -> dict[str, str]:
        """Units of every channel a formula may use: raw ones, then derived ones."""
        return {**self.raw_units, **{n: f.units for n, f in self.formulas.items()}}

    def compile(self, name: str, stack: tuple[str, ...] = ()) -> Compiled:
        """Compile a saved formula, after the derived channels it uses (cycles refused)."""
        if name in self._compiled:
            return self._compiled[name]
        if name in stack:
            cycle = " -> ".join([*stack[stack.index(name) :], name])
            raise ValidationError(f"derived channels form a cycle: {cycle}")
        spec = self.formulas[name]
        compiled = self._compile_text(spec.formula, (*stack, name))
        self._compiled[name] = compiled
        return compiled

    def _compile_text(self, text: str, stack: tuple[str, ...] = ()) -> Compiled:
        # Saved derived channels carry their units, so one compile usually suffices; the
        # derived ones it uses are compiled too (cycles), and a unit they disagree on
        # (a formula not saved yet) means compiling again with the right one.
        units = self.units_map()
        compiled = compile_formula(text, units, self.snap.grid.interval_ns, self.tz)
        stale = False
        for ref in compiled.refs:
            if ref in self.formulas and ref not in self.raw_units:
                dep = self.compile(ref, stack)
                stale |= units[ref] != dep.units
                units[ref] = dep.units
        if stale:
            compiled = compile_formula(text, units, self.snap.grid.interval_ns, self.tz)
        return compiled

    def check_grid(self, name: str, compiled: Compiled) -> None:
        """Derived channels used as inputs must be on the dataset's own grid."""
        for ref in compiled.refs:
            if ref in self.formulas and self.compile(ref).interval_ns != self.snap.grid.interval_ns:
                raise ValidationError(
                    f"{name!r} uses {ref!r}, which is on a "
                    f"{format_duration(self.compile(ref).interval_ns)} grid; use its formula with "
                    "resample() at the end instead"
                )

    def evaluate(self, compiled: Compiled, start_ns: int, end_ns: int) -> xr.DataArray:
        """Evaluate on ``[start_ns, end_ns)``, reading inputs with the formula's margins."""
        before, after = compiled.margin_ns
        step = self.snap.grid.interval_ns
        lo = (start_ns - before) // step * step
        hi = -(-(end_ns + after) // step) * step
        inputs: dict[str, xr.DataArray] = {}
        raw = [r for r in compiled.refs if r in self.raw_units]
        if raw:
            ds = self.store.read(
                self.dataset_id,
                raw,
                np.datetime64(lo, "ns"),
                np.datetime64(hi, "ns"),
                as_of=self.snap,
            )
            inputs.update({r: ds[r] for r in raw})
        for r in compiled.refs:
            if r not in self.raw_units:
                inputs[r] = self.stored_or_evaluated(r, lo, hi)
        return compiled.evaluate(inputs, start_ns, end_ns)

    def values_held(self, name: str, start_ns: int, end_ns: int, budget: int) -> int:
        """Values read or computed to get ``name`` on ``[start_ns, end_ns)``, before any read.

        Mirrors ``stored_or_evaluated``: stored inputs over the range widened by the
        formula's margins, nested derived channels over their own widened ranges, and each
        result. Stops counting once over ``budget`` (the caller refuses anyway).
        """
        step = self.snap.grid.interval_ns
        key = (name, start_ns, end_ns)
        if key in self._held:
            return self._held[key]
        if is_fresh(self, name):
            return -(-(end_ns - start_ns) // step)
        compiled = self.compile(name)
        before, after = compiled.margin_ns
        lo = (start_ns - before) // step * step
        hi = -(-(end_ns + after) // step) * step
        total = max(-(-(end_ns - start_ns) // compiled.interval_ns), 0)
        for ref in sorted(compiled.refs):
            if total > budget:
                break
            if ref in self.raw_units:
                total += (hi - lo) // step
            else:
                total += self.values_held(ref, lo, hi, budget - total)
        if total <= budget:  # exact, not cut short: a sub-formula used twice is counted once
            self._held[key] = total
        return total

    def stored_or_evaluated(self, name: str, start_ns: int, end_ns: int) -> xr.DataArray:
        """A derived channel's values: stored ones when materialised and fresh (and none of
        its inputs has buffered appends in the range), else computed."""
        if is_fresh(self, name) and not self._buffered(name, start_ns, end_ns):
            ds = self.store.read(
                self.dataset_id,
                [name],
                np.datetime64(start_ns, "ns"),
                np.datetime64(end_ns, "ns"),
                as_of=self.snap,
            )
            arr = ds[name]
            arr.attrs["formula"] = self.formulas[name].formula
            return arr
        return self.evaluate(self.compile(name), start_ns, end_ns)

    def _buffered(self, name: str, start_ns: int, end_ns: int) -> bool:
        """Whether an input of ``name`` has appended rows not folded yet near the range
        (its stored values, computed from commits, cannot include them)."""
        view = getattr(self.snap, "buffer", None)
        if view is None or view.empty:
            return False
        before, after = self.compile(name).margin_ns
        step = self.snap.grid.interval_ns
        lo, hi = (start_ns - before) // step, -(-(end_ns + after) // step)
        return any(
            (span := view.extent.get(ref)) is not None and span[0] < hi and span[1] > lo
            for ref in _raw_inputs(self, name)
        )


def _unknown(name: str, known: Iterable[str], dataset_id: str) -> ChannelNotFoundError:
    hint = difflib.get_close_matches(name, list(known), 1)
    return ChannelNotFoundError(
        f"dataset {dataset_id!r} has no channel or derived channel {name!r}"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
    )


def save_formula(
    store: Store, dataset_id: str, spec: FormulaSpec, actor: str | None = None
) -> FormulaSpec:
    """Check a formula against the dataset (syntax, channels, units, cycles) and save it."""
    ctx = DerivedContext(store, dataset_id)
    if spec.name in ctx.raw_units:
        raise ValidationError(
            f"{spec.name!r} is a stored channel of {dataset_id!r}; choose another name"
        )
    ctx.formulas[spec.name] = spec
    compiled = ctx.compile(spec.name)
    ctx.check_grid(spec.name, compiled)
    # Formulas that use this one must still compile with its (possibly new) units.
    saved = spec.model_copy(update={"units": compiled.units})
    ctx.formulas[spec.name] = saved
    ctx._compiled.clear()
    for other in ctx.formulas:
        ctx.compile(other)
    result = store.registry.save_formula(dataset_id, saved, store.actor(actor))
    if saved.materialize:
        materialize(store, dataset_id, saved.name, actor=actor)
    elif saved.name in ctx.materialized:  # no longer materialised: drop the stored values
        store.delete_channel(dataset_id, saved.name, confirm=saved.name, actor=actor)
    return result


def list_formulas(store: Store, dataset_id: str) -> list[FormulaSpec]:
    """The dataset's derived channels."""
    store.get_dataset(dataset_id)
    return store.registry.list_formulas(dataset_id)


def delete_formula(
    store: Store, dataset_id: str, name: str, confirm: str | None, actor: str | None = None
) -> None:
    """Delete a derived channel; refused while other formulas use it; confirm repeats its name."""
    formulas = {f.name: f for f in store.registry.list_formulas(dataset_id)}
    if name not in formulas:
        raise _unknown(name, formulas, dataset_id)
    if confirm != name:
        raise ConfirmationRequiredError(
            f"deleting derived channel {name!r}: confirm by repeating its name"
        ).with_fixes([Fix("confirm", name)])
    ctx = DerivedContext(store, dataset_id, formulas=formulas.values())
    users = [o for o in formulas if o != name and name in ctx.compile(o).refs]
    if users:
        raise ValidationError(
            f"derived channel {name!r} is used by {', '.join(map(repr, users))}; delete those first"
        )
    store.registry.delete_formula(dataset_id, name, store.actor(actor))
    if name in ctx.materialized:
        store.delete_channel(dataset_id, name, confirm=name, actor=actor)


def _range(ctx: DerivedContext, start: object | None, end: object | None) -> tuple[int, int]:
    i0, i1 = index_range(ctx.snap, start, end)
    step = ctx.snap.grid.interval_ns
    return i0 * step, i1 * step


UNSAVED = "=formula"  # what an unsaved formula is read as (``unsaved=``): never a channel's name


def _context(store: Store, dataset_id: str, as_of: AsOf, unsaved: str | None) -> DerivedContext:
    """A context at ``as_of``; with ``unsaved``, that formula text is readable as the derived
    channel ``UNSAVED``, checked as on save (syntax, channels, units, grids of its inputs)."""
    ctx = DerivedContext(store, dataset_id, as_of)
    if unsaved is not None:
        ctx.formulas[UNSAVED] = FormulaSpec.model_construct(
            name=UNSAVED, formula=unsaved, units="", description="", materialize=False
        )
        ctx.check_grid("formula", ctx.compile(UNSAVED))
    return ctx


def evaluate_text(
    store: Store,
    dataset_id: str,
    text: str,
    start: object | None = None,
    end: object | None = None,
    as_of: AsOf = None,
) -> xr.DataArray:
    """Evaluate a formula without saving it (``stream0d formula eval``)."""
    ctx = DerivedContext(store, dataset_id, as_of)
    compiled = ctx._compile_text(text)
    ctx.check_grid("formula", compiled)
    lo, hi = _range(ctx, start, end)
    out = ctx.evaluate(compiled, lo, hi)
    out.name = "value"
    return out


def values_held(
    store: Store,
    dataset_id: str,
    names: list[str],
    start: object | None,
    end: object | None,
    budget: int,
    as_of: AsOf = None,
    unsaved: str | None = None,
) -> int:
    """Values a read of the derived channels ``names`` holds to evaluate them, margins and
    nested windows included; computed from the formulas alone, before reading anything.

    Stored channels in ``names`` are not counted (the caller counts them); an unknown name
    is ChannelNotFoundError, as the read would say. ``unsaved`` is a formula not saved,
    named ``UNSAVED`` in ``names`` (its compile errors are raised here, before any read).
    """
    ctx = _context(store, dataset_id, as_of, unsaved)
    lo, hi = _range(ctx, start, end)
    total = 0
    for n in names:
        if n in ctx.raw_units:
            continue
        if n not in ctx.formulas:
            raise _unknown(n, [*ctx.raw_units, *ctx.formulas], dataset_id)
        if total <= budget:
            total += ctx.values_held(n, lo, hi, budget - total)
    return total


def _coarsen(arr: xr.DataArray, interval_ns: int, target_ns: int, how: str) -> xr.DataArray:
    """Aggregate a result on ``interval_ns`` to epoch-aligned bins of ``target_ns``."""
    if target_ns == interval_ns or arr.sizes["time"] == 0:
        return arr
    i0 = int(arr.time.values[0].astype("datetime64[ns]").astype(np.int64)) // interval_ns
    vals, first = aggregate(arr.values.astype(np.float64), i0, target_ns // interval_ns, how)
    times = (np.arange(vals.size, dtype=np.int64) * target_ns + first * interval_ns).astype(
        "datetime64[ns]"
    )
    return xr.DataArray(vals, coords={"time": times}, dims=("time",), attrs=dict(arr.attrs))


def read(
    store: Store,
    dataset_id: str,
    channels: list[str] | None = None,
    start: object | None = None,
    end: object | None = None,
    every: str | None = None,
    how: str = "mean",
    as_of: AsOf = None,
    unsaved: str | None = None,
) -> xr.Dataset:
    """Like ``Store.read`` but channels may be derived ones (all stored ones by default).

    Without ``every``, every channel read together must be on the same grid (a formula
    ending in ``resample()`` is on a coarser one); with ``every``, all are aggregated to it.
    ``unsaved`` is a formula evaluated without saving it, read as the channel ``UNSAVED``.
    """
    ctx = _context(store, dataset_id, as_of, unsaved)
    names = list(ctx.raw_units) if channels is None else list(channels)
    derived = [n for n in names if n not in ctx.raw_units]
    for n in derived:
        if n not in ctx.formulas:
            raise _unknown(n, [*ctx.raw_units, *ctx.formulas], dataset_id)
    if not derived:
        return store.read(dataset_id, names, start, end, every, how, as_of=ctx.snap)
    step = ctx.snap.grid.interval_ns
    target = step * bin_steps(ctx.snap.grid, every, how) if every is not None else None
    lo, hi = _range(ctx, start, end)
    raw = [n for n in names if n in ctx.raw_units]
    variables: dict[str, xr.DataArray] = {}
    attrs: dict[str, Any] = {}
    if raw:
        base = store.read(
            dataset_id,
            raw,
            np.datetime64(lo, "ns"),
            np.datetime64(hi, "ns"),
            every,
            how,
            as_of=ctx.snap,
        )
        variables.update({n: base[n] for n in raw})
        attrs = dict(base.attrs)
    grids = {step} if raw else set()
    for n in derived:
        compiled = ctx.compile(n)
        arr = ctx.stored_or_evaluated(n, lo, hi)
        if target is not None:
            if target % compiled.interval_ns:
                raise ValidationError(
                    f"derived channel {n!r} is on a {format_duration(compiled.interval_ns)} grid; "
                    f"every= must be a multiple of it"
                )
            arr = _coarsen(arr, compiled.interval_ns, target, how)
            if how == "count":
                arr.attrs["units"] = "1"
        grids.add(compiled.interval_ns)
        variables[n] = arr
    if target is None and len(grids) > 1:
        raise ValidationError(
            "these channels are on different grids ("
            + ", ".join(sorted(format_duration(g) for g in grids))
            + "): read them separately or aggregate with every="
        )
    ds = xr.Dataset(variables)[names]
    ds.attrs.update(attrs)
    ds.attrs.update(
        {
            "dataset": dataset_id,
            "snapshot": ctx.snap.id,
            "tz": ctx.tz,
            "interval": format_duration(target or next(iter(grids))),
        }
    )
    return ds


# ---- materialised derived channels -------------------------------------------------------
MATERIALIZED_TAG = "derived"


def _raw_inputs(ctx: DerivedContext, name: str) -> set[str]:
    """Stored channels a derived channel depends on, through other derived ones."""
    out: set[str] = set()
    for ref in ctx.compile(name).refs:
        out |= {ref} if ref in ctx.raw_units else _raw_inputs(ctx, ref)
    return out


def _names(value: object) -> set[str]:
    """Channel names listed in commit metadata (absent or malformed: none)."""
    return {str(v) for v in value} if isinstance(value, list) else set()


def is_fresh(ctx: DerivedContext, name: str) -> bool:
    """Whether stored values of a materialised channel match its formula and inputs.

    Fresh when the array was computed from the current formula at a snapshot after which
    no commit touched its inputs (walking history back from the snapshot being read).
    """
    spec = ctx.formulas.get(name)
    attrs = ctx.snap.channels.get(name)
    if spec is None or not spec.materialize or attrs is None:
        return False
    if attrs.get("formula") != spec.formula or not attrs.get("derived_from"):
        return False
    inputs = _raw_inputs(ctx, name)
    for commit in ctx.store.data(ctx.dataset_id).history(since=ctx.snap.id):
        if commit.id == attrs["derived_from"]:
            return True
        md = commit.metadata
        if md.get("action") == "materialize":
            continue
        touched = _names(md.get("channels")) | _names(md.get("new_channels"))
        # deletes, channel changes: be safe (a fold is an ingest of appended rows)
        if md.get("action") not in ("ingest", "fold") or touched & inputs:
            return False
    return False


def materialize(
    store: Store,
    dataset_id: str,
    name: str,
    start: object | None = None,
    end: object | None = None,
    actor: str | None = None,
) -> str | None:
    """Compute a derived channel over a range (default: all data) and store its values.

    Values are written whole-chunk in one commit that records the snapshot they were
    computed from; missing results erase stale stored values. Returns the snapshot id.
    """
    from stream0d_nb.specs import ChannelSpec
    from stream0d_nb.store.repo import WriteView

    who = store.actor(actor)
    ctx = DerivedContext(store, dataset_id)
    if name not in ctx.formulas:
        raise _unknown(name, ctx.formulas, dataset_id)
    compiled = ctx.compile(name)
    grid = ctx.snap.grid
    if compiled.interval_ns != grid.interval_ns:
        raise ValidationError(
            f"{name!r} is on a {format_duration(compiled.interval_ns)} grid: only "
            "formulas on the dataset's own grid can be materialised"
        )
    lo, hi = _range(ctx, start, end)
    if hi <= lo:
        return None
    values = ctx.evaluate(compiled, lo, hi).values.astype(np.float64)
    i0 = lo // grid.interval_ns
    spec = ChannelSpec(
        name=name,
        units=compiled.units,
        description=f"materialised: {compiled.text}",
        tags=[MATERIALIZED_TAG],
    )

    def work(view: WriteView) -> int:
        if name in view.arrays and view.arrays[name].attrs.get("units") != spec.units:
            view.delete_channel(name)
        if name not in view.arrays:
            view.create_channel(spec)
        length = grid.chunk_len
        c0, c1 = i0 // length, (i0 + values.size - 1) // length
        view.ensure_stop((c1 + 1) * length)
        for c in range(c0, c1 + 1):
            base = c * length
            block = view.read(name, base, base + length)
            a, b = max(i0, base), min(i0 + values.size, base + length)
            block[a - base : b - base] = values[a - i0 : b - i0]
            view.write_many(base, {name: block})
        view.arrays[name].attrs.update(
            {
                "formula": compiled.text,
                "derived_from": ctx.snap.id,
                "tags": [MATERIALIZED_TAG],
                "description": spec.description,
                "units": spec.units,
            }
        )
        finite = np.flatnonzero(~np.isnan(values))
        if finite.size:
            view.extend_extent(i0 + int(finite[0]), i0 + int(finite[-1]) + 1)
        return int(finite.size)

    _, snap = store.data(dataset_id).transact(
        work,
        lambda n: f"materialize {name} by {who}: {n:,} values from {ctx.snap.id}",
        lambda n: {
            "actor": who,
            "action": "materialize",
            "formula": name,
            "channels": [name],
            "derived_from": ctx.snap.id,
            "values": n,
        },
    )
    return snap


def materialize_after_write(store: Store, dataset_id: str, report: IngestReport) -> None:
    """Write hook: recompute materialised channels whose inputs a write changed (not after
    an append: its rows are in no commit yet; reads compute over them, the fold's
    commit re-materialises)."""
    if report.commit is None or report.source.startswith("materialize:"):
        return
    if report.start is None or report.end is None:
        return
    ctx = DerivedContext(store, dataset_id)
    targets = [f.name for f in ctx.formulas.values() if f.materialize]
    written = set(report.channels) | set(report.new_channels)
    step = ctx.snap.grid.interval_ns
    for name in targets:
        if not _raw_inputs(ctx, name) & written:
            continue
        before, after = ctx.compile(name).margin_ns
        # inputs changed on [start, end] affect results from `after` earlier to `before` later
        lo = to_ns(report.start) - after
        hi = to_ns(report.end) + step + before
        materialize(
            store, dataset_id, name, np.datetime64(max(lo, 0), "ns"), np.datetime64(hi, "ns")
        )
