"""The per-series state machine, vectorised over a whole range (no loop per sample).

Inputs are the condition ``c`` and clear ``r`` on the grid (1 true, 0 false, NaN
unknown; ``r`` None means "clear when ``c`` is 0"). A *set* sample has ``c`` true and
``r`` not true; a *cancel* sample has ``c`` false or ``r`` true (clear wins over set);
unknown samples hold the state. Runs of "armed" samples (from a set to the next cancel,
found with a forward fill of those events) are pending periods; a run fires at its first
set sample at least ``k_for`` steps after its start; an episode runs from that sample to
the next sample where ``r`` (or, without ``r``, ``c == 0``) holds. Candidates that fire
inside an earlier episode belong to it (they share its end), and runs that start inside
an episode are ignored, which is exactly what the sequential machine does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F8 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int64]
B1 = npt.NDArray[np.bool_]

STATES = ("ok", "pending", "firing", "resolved")
OK, PENDING, FIRING, RESOLVED = range(4)


@dataclass(frozen=True)
class Machine:
    """What happened over ``n`` samples: transitions, episodes, the state at the end.

    Episode starts of ``-1`` were firing before the arrays; ends equal to ``n`` are open.
    ``since`` is the index where the final pending/firing state began (-1: before).
    """

    at: I8
    to: I8
    ep_start: I8
    ep_end: I8
    final: int
    since: int


def next_true(mask: B1) -> I8:
    """Index of the next True at or after each position (``n`` when none), length n+1."""
    n = mask.size
    idx = np.where(mask, np.arange(n, dtype=np.int64), n)
    out = np.empty(n + 1, dtype=np.int64)
    out[n] = n
    out[:n] = np.minimum.accumulate(idx[::-1])[::-1] if n else idx
    return out


def run(c: F8, r: F8 | None, k_for: int, init: int, pending_thr: int = 0) -> Machine:
    """Run the machine from state ``init`` (``pending_thr``: first index a pending may fire)."""
    n = c.size
    known = ~np.isnan(c)
    c_true = known & (c != 0)
    c_false = known & (c == 0)
    r_true = c_false if r is None else (~np.isnan(r) & (r != 0))
    s = c_true & ~r_true
    u = c_false | r_true
    armed0 = init == PENDING
    # forward fill of set/cancel events -> armed signal
    pos = np.where(s | u, np.arange(n, dtype=np.int64), -1)
    last = np.maximum.accumulate(pos) if n else pos
    armed = np.where(last >= 0, s[np.maximum(last, 0)], armed0)
    prev = np.concatenate(([armed0], armed[:-1])) if n else armed
    starts = np.flatnonzero(armed & ~prev).astype(np.int64)
    ends = np.flatnonzero(~armed & prev).astype(np.int64)
    if armed0:
        starts = np.concatenate(([-1], starts))
    if ends.size < starts.size:
        ends = np.concatenate((ends, [n]))
    thr = np.where(starts >= 0, starts + k_for, pending_thr)
    nxt_s, nxt_r = next_true(s), next_true(r_true)
    fire = nxt_s[np.minimum(thr, n)]
    fired = fire < ends
    # episodes: (firing from state) + fired runs, merged when they share their end
    ep_f = fire[fired]
    ep_e = nxt_r[ep_f]
    if init == FIRING:
        ep_f = np.concatenate(([-1], ep_f))
        ep_e = np.concatenate(([nxt_r[0]], ep_e))
    keep = np.ones(ep_f.size, dtype=bool)
    keep[1:] = ep_e[1:] != ep_e[:-1]
    ep_f, ep_e = ep_f[keep], ep_e[keep]
    # runs that start inside an episode belong to it
    j = np.searchsorted(ep_f, starts, side="left") - 1
    inside = (j >= 0) & (starts < ep_e[np.maximum(j, 0)]) if ep_f.size else np.zeros_like(fired)
    inside &= starts >= 0
    own = ~inside
    at_parts = [ep_e[ep_e < n], fire[own & fired]]
    to_parts = [np.full(int((ep_e < n).sum()), RESOLVED), np.full(int((own & fired).sum()), FIRING)]
    new = own & (starts >= 0) if k_for > 0 else np.zeros_like(own)
    cancel = own & ~fired & (ends < n)
    at_parts += [starts[new], ends[cancel]]
    to_parts += [np.full(int(new.sum()), PENDING), np.full(int(cancel.sum()), OK)]
    at = np.concatenate(at_parts).astype(np.int64)
    to = np.concatenate(to_parts).astype(np.int64)
    order = np.argsort(at, kind="stable")
    at, to = at[order], to[order]
    final, since = (int(to[-1]), -1) if at.size else (init, -1)
    if ep_e.size and ep_e[-1] == n:
        final, since = FIRING, int(ep_f[-1])
    elif starts.size and ends[-1] == n and own[-1] and not fired[-1]:
        final, since = PENDING, int(starts[-1])
    return Machine(at, to, ep_f, ep_e, final, since)
