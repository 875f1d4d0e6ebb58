"""The pure alert engine: rules + data over ``[start, end)`` -> episodes, transitions, state.

Semantics (times are UTC ns on the rule's grid, the dataset interval or a formula's
``resample`` grid; no time zone or DST enters except through time functions):

- Each enabled rule has one series per channel (or one, ``""``, on a formula). Its
  condition is evaluated at every grid time ``t`` in the range: 1 true, 0 false, NaN
  unknown (missing data). States: ok -> pending -> firing -> resolved; ``resolved``
  behaves as ok (it is the state after an episode) and the next episode starts from it.
- **Unknown holds the state**: NaN neither starts nor cancels nor clears. A pending
  period keeps counting its time through NaN but fires only at a sample where the
  condition is known true.
- **for_duration**: pending starts at the first true sample ``p``; the rule fires at the
  first true sample ``f`` with ``f - p >= for_duration`` unless a false sample comes
  first (back to ok). With ``for_duration = 0`` it fires at once (no pending state).
- **Clear**: an episode ``[f, e)`` ends at ``e``, the first sample after ``f`` where the
  clear condition holds: ``condition == 0`` by default, or the hysteresis/clear formula
  of the rule (AlertRule docs). When condition and clear both hold, clear wins (no
  start). A new pending period can start on the sample after ``e``.
- **Peak**: the sample of ``[f, e)`` with the extreme watched value (``AlertRule.peak_mode``;
  the first one on ties); NaN (at ``f``) for rules without a value (no_data, formula).
- **Ranges and state**: episodes overlapping ``[start, end)`` are returned, ``end=None``
  while open at ``end``. Without state a series starts ok at ``start - for_duration``
  (a warm-up whose transitions are not reported), so a condition that already held
  long enough fires at ``start``. With the state of a previous call the machine goes on
  exactly where it stopped: one call over ``[a, c)`` and two calls ``[a, b)``, ``[b, c)``
  give the same transitions (and the same episodes, an open one being reported again
  with its final end). A range starting before the state's ``next_ns`` skips the samples
  already evaluated (no repeats); one starting after it is an error (nothing is dropped).
- ``data`` must cover ``[start - lookback_ns(rule), end)``; missing samples are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr

from stream0d_nb.alerts import machine
from stream0d_nb.alerts.rules import AlertRule, PeakMode, Test
from stream0d_nb.errors import ValidationError
from stream0d_nb.formulas import Compiled, compile_formula
from stream0d_nb.formulas.ops import Cache
from stream0d_nb.specs import parse_duration

F8 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int64]
B1 = npt.NDArray[np.bool_]
Inputs = dict[str, tuple[F8, int]]


@dataclass(frozen=True)
class Episode:
    """An alert episode of one rule on one series (times in UTC ns; ``end`` None = open)."""

    rule: str
    series: str
    start: int
    end: int | None
    peak_value: float
    peak_time: int
    severity: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    """A state change of a rule on a series at ``at`` (UTC ns), with the watched value."""

    rule: str
    series: str
    at: int
    from_state: str
    to_state: str
    value: float


@dataclass
class EvaluationResult:
    """Episodes and transitions in time order, and the state to continue from."""

    episodes: list[Episode]
    transitions: list[Transition]
    state: dict[str, dict[str, dict[str, Any]]]


@lru_cache(maxsize=8192)
def _compile(text: str, units: tuple[tuple[str, str], ...], interval_ns: int, tz: str) -> Compiled:
    return compile_formula(text, dict(units), interval_ns, tz)


def compiled_rule(
    rule: AlertRule, series: str, units: Mapping[str, str], interval_ns: int, tz: str
) -> tuple[Compiled, Compiled | None, Compiled | None]:
    """(condition, value, clear) compiled for one series (cached by text and units)."""
    return _compiled_rule(rule, series, tuple(sorted(units.items())), interval_ns, tz)


def _compiled_rule(
    rule: AlertRule, series: str, key: tuple[tuple[str, str], ...], interval_ns: int, tz: str
) -> tuple[Compiled, Compiled | None, Compiled | None]:
    texts = (
        rule.condition_formula(series),
        rule.fast_value_formula(series)[0],
        rule.clear_formula_text(series),
    )
    cond, value, clear = (None if t is None else _compile(t, key, interval_ns, tz) for t in texts)
    assert cond is not None
    if len({c.interval_ns for c in (cond, value, clear) if c is not None}) > 1:
        raise ValidationError(
            f"rule {rule.name!r}: condition, value and clear are on different time grids"
        )
    return cond, value, clear


@lru_cache(maxsize=1024)
def _duration_ns(text: str) -> int:
    """``AlertRule.for_ns`` of a ``for_duration`` text (parsing is slow; rules repeat)."""
    return parse_duration(text) or 0


def lookback_ns(
    rule: AlertRule, channels_units: Mapping[str, str], interval_ns: int, tz: str = "UTC"
) -> int:
    """Data needed before a range start: formula margins plus ``for_duration`` (warm-up)."""
    most = 0
    for s in rule.series_names(channels_units):
        cond, value, clear = compiled_rule(rule, s, channels_units, interval_ns, tz)
        g = cond.interval_ns
        margin = max(c.margin_ns[0] for c in (cond, value, clear) if c is not None)
        most = max(most, margin + -(-rule.for_ns() // g) * g)
    return most


def _inputs(
    data: xr.Dataset | Mapping[str, xr.DataArray], base_ns: int
) -> tuple[Inputs, dict[str, str]]:
    """Channels as (float64 values, first grid index) and their units."""
    arrays: Iterable[tuple[Any, xr.DataArray]] = (
        data.data_vars.items() if isinstance(data, xr.Dataset) else data.items()
    )
    inputs: Inputs = {}
    units: dict[str, str] = {}
    for name, da in arrays:
        values = np.asarray(da.values, dtype=np.float64)
        first = 0
        if values.size:
            t0 = int(np.asarray(da["time"].values[:1]).astype("datetime64[ns]").astype(np.int64)[0])
            if t0 % base_ns:
                raise ValidationError(f"channel {name!r} is not on the grid of {base_ns} ns")
            first = t0 // base_ns
        inputs[str(name)] = (values, first)
        units[str(name)] = str(da.attrs.get("units", "")) or "1"
    return inputs, units


def apply_test(t: Test, v: F8) -> F8:
    """The condition from the value (1/0, NaN where the value is NaN)."""
    true, _ = test_masks(t, v)
    res = true.astype(np.float64)
    res[np.isnan(v)] = np.nan
    return res


def apply_test_nan_bounds(t: Test, x: F8) -> B1:
    """The true mask when a bound is NaN (comparisons with it are all False)."""
    with np.errstate(invalid="ignore"):
        if t.op in ("outside", "inside"):
            out = (x < t.a) | (x > t.b)
            return out if t.op == "outside" else (x >= t.a) & (x <= t.b)
        return {">": x > t.a, ">=": x >= t.a, "<": x < t.a, "<=": x <= t.a}[t.op]


def test_masks(t: Test, v: F8) -> tuple[B1, B1]:
    """(known true, known false) masks of the condition from the value (NaN: neither)."""
    x = np.abs(v) if t.absolute else v
    if math.isnan(t.a) or (t.op in ("outside", "inside") and math.isnan(t.b)):
        true = apply_test_nan_bounds(t, x)
        return true, ~true & ~np.isnan(x)
    with np.errstate(invalid="ignore"):  # comparisons with NaN are False both ways
        if t.op == ">":
            return x > t.a, x <= t.a
        if t.op == ">=":
            return x >= t.a, x < t.a
        if t.op == "<":
            return x < t.a, x >= t.a
        if t.op == "<=":
            return x <= t.a, x > t.a
        outside = (x < t.a) | (x > t.b)
        inside = (x >= t.a) & (x <= t.b)
    return (outside, inside) if t.op == "outside" else (inside, outside)


def _score(mode: PeakMode, v: F8, lo: float, hi: float) -> F8:
    """Higher is more extreme; NaN values never win."""
    if mode == "max":
        s = v
    elif mode == "min":
        s = -v
    elif mode == "absmax":
        s = np.abs(v)
    elif mode == "outside":
        s = np.maximum(lo - v, v - hi)
    else:
        s = np.zeros_like(v)
    return np.where(np.isnan(v), -np.inf, s)


def _peaks(vals: F8, mode: PeakMode, lo: float, hi: float, starts: I8, ends: I8) -> tuple[F8, I8]:
    """Best score and its first index per segment ``[starts, ends)`` (-inf, -1 if none)."""
    best = np.full(starts.size, -np.inf)
    where = np.full(starts.size, -1, dtype=np.int64)
    lens = ends - starts
    ok = np.flatnonzero(lens > 0)
    if not ok.size or mode in ("first", "none"):
        return best, where
    st, ln = starts[ok], lens[ok]
    offs = np.cumsum(ln) - ln
    seg = np.repeat(np.arange(st.size), ln)
    idx = np.arange(seg.size) - offs[seg] + st[seg]
    sc = _score(mode, vals[idx], lo, hi)
    mx = np.maximum.reduceat(sc, offs)
    hit = (sc == mx[seg]) & (sc > -np.inf)
    segs, first = np.unique(seg[hit], return_index=True)
    best[ok] = mx
    where[ok[segs]] = idx[hit][first]
    return best, where


def _nan_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _series(
    rule: AlertRule,
    series: str,
    comp: tuple[Compiled, Compiled | None, Compiled | None],
    inputs: Inputs,
    start_ns: int,
    end_ns: int,
    st: dict[str, Any] | None,
    res: EvaluationResult,
    cache: Cache,
) -> dict[str, Any]:
    """Evaluate one series; appends to ``res`` and returns its new state."""
    cond, value, clear = comp
    g = cond.interval_ns
    j0, j1 = -(-start_ns // g), -(-end_ns // g)
    k_for = -(-_duration_ns(rule.for_duration) // g)
    init, since = machine.OK, None
    peak_v, peak_t = math.nan, None
    if st is not None:
        nxt = int(st["next_ns"]) // g
        if nxt < j0:
            raise ValidationError(
                f"rule {rule.name!r} series {series!r}: state continues at {st['next_ns']} ns "
                f"but the range starts at {start_ns} ns; evaluate from there"
            )
        j0 = max(j0, nxt)
        init = machine.STATES.index(st["state"])
        since = st.get("since")
        peak_v = math.nan if st.get("peak_value") is None else float(st["peak_value"])
        peak_t = st.get("peak_time")
    w0 = j0 - (k_for if st is None else 0)
    j1 = max(j1, j0)
    n = j1 - w0
    v = value.evaluate_values(inputs, w0, j1, cache) if value is not None else None
    if v is not None and rule.fast_value_formula(series)[1]:
        v = np.where(np.isinf(v), np.nan, v)  # not in place: v may be a shared window
    t = rule.test()
    if t is not None and v is not None:
        c_true, c_false = test_masks(t, v)
    else:
        c_true, c_false = machine.truth(cond.evaluate_values(inputs, w0, j1, cache))
    r = None
    if clear is not None:
        r = machine.truth(clear.evaluate_values(inputs, w0, j1, cache))[0]
    pending_thr = 0
    if init == machine.PENDING and since is not None:
        pending_thr = max(0, -(-(int(since) + k_for * g) // g) - w0)
    m = machine.run_masks(c_true, c_false, r, k_for, init, pending_thr)
    t0 = w0 * g
    # transitions (from-state is the previous to-state; warm-up ones are not reported)
    frm = np.concatenate(([init], m.to[:-1])) if m.at.size else m.to
    vals = v if v is not None else np.full(n if m.at.size or m.ep_start.size else 0, np.nan)
    keep = m.at >= j0 - w0
    name, states = rule.name, machine.STATES
    res.transitions.extend(
        Transition(name, series, t0 + a * g, states[f_], states[to], x)
        for a, f_, to, x in zip(
            m.at[keep].tolist(),
            frm[keep].tolist(),
            m.to[keep].tolist(),
            vals[m.at[keep]].tolist(),
            strict=True,
        )
    )
    # episodes with peaks
    lo = rule.low if rule.low is not None else math.nan
    hi = rule.high if rule.high is not None else math.nan
    mode = rule.peak_mode()
    best, where = _peaks(vals, mode, lo, hi, np.maximum(m.ep_start, 0), m.ep_end)
    ranked = mode not in ("first", "none")
    for k, (f, e) in enumerate(zip(m.ep_start.tolist(), m.ep_end.tolist(), strict=True)):
        i = int(where[k])
        if f >= 0:
            start = t0 + f * g
            pv, pt = (float(vals[f]) if mode == "first" else math.nan), start
            if ranked and i >= 0:
                pv, pt = float(vals[i]), t0 + i * g
        else:  # going on from the state
            start = int(since) if since is not None else t0
            pv, pt = peak_v, int(peak_t) if peak_t is not None else start
            before = -np.inf if math.isnan(pv) else _score(mode, np.array([pv]), lo, hi)[0]
            if ranked and i >= 0 and best[k] > before:
                pv, pt = float(vals[i]), t0 + i * g
        end = t0 + e * g if e < n else None
        res.episodes.append(
            Episode(rule.name, series, start, end, pv, pt, rule.severity, dict(rule.labels))
        )
    # new state
    new: dict[str, Any] = {"state": machine.STATES[m.final], "next_ns": j1 * g}
    if m.final == machine.PENDING:
        new["since"] = t0 + m.since * g if m.since >= 0 else since
    if m.final == machine.FIRING:
        ep = res.episodes[-1]
        new.update(since=ep.start, peak_value=_nan_none(ep.peak_value), peak_time=ep.peak_time)
    return new


def evaluate_rules(
    rules: Sequence[AlertRule],
    data: xr.Dataset | Mapping[str, xr.DataArray],
    start_ns: int,
    end_ns: int,
    interval_ns: int,
    tz: str = "UTC",
    state: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> EvaluationResult:
    """Evaluate ``rules`` over ``[start_ns, end_ns)`` (see the module docstring)."""
    inputs, units = _inputs(data, interval_ns)
    res = EvaluationResult([], [], {})
    state = state or {}
    key = tuple(sorted(units.items()))
    cache: Cache = {}  # windows shared between rules (same inputs throughout)
    for rule in rules:
        if not rule.enabled:
            continue
        out = res.state.setdefault(rule.name, {})
        for s in rule.series_names(units):
            comp = _compiled_rule(rule, s, key, interval_ns, tz)
            missing = comp[0].refs - inputs.keys()
            if missing:
                raise ValidationError(f"rule {rule.name!r}: no data for {sorted(missing)}")
            prev = state.get(rule.name, {}).get(s)
            out[s] = _series(rule, s, comp, inputs, int(start_ns), int(end_ns),
                             dict(prev) if prev else None, res, cache)  # fmt: skip
    res.transitions.sort(key=lambda x: x.at)
    res.episodes.sort(key=lambda x: x.start)
    return res
