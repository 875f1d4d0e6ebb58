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


def next_index(idx: I8, at: I8, n: int) -> I8:
    """For each of ``at``, the first of the sorted indices ``idx`` at or after it (else n)."""
    j = np.searchsorted(idx, at, side="left")
    return (
        np.where(j < idx.size, idx[np.minimum(j, max(idx.size - 1, 0))], n)
        if idx.size
        else np.full(at.size, n, dtype=np.int64)
    )


def truth(c: F8) -> tuple[B1, B1]:
    """(known true, known false) masks of a condition (1 true, 0 false, NaN unknown)."""
    with np.errstate(invalid="ignore"):
        return (c != 0) & (c == c), c == 0


def run(c: F8, r: F8 | None, k_for: int, init: int, pending_thr: int = 0) -> Machine:
    """Run the machine from state ``init`` (``pending_thr``: first index a pending may fire)."""
    c_true, c_false = truth(c)
    return run_masks(c_true, c_false, None if r is None else truth(r)[0], k_for, init, pending_thr)


def run_masks(
    c_true: B1, c_false: B1, r_true: B1 | None, k_for: int, init: int, pending_thr: int = 0
) -> Machine:
    """:func:`run` on the condition's true/false masks and the clear's true mask."""
    n = c_true.size
    s = c_true if r_true is None else c_true & ~r_true
    if r_true is None:
        r_true = c_false
    empty = np.zeros(0, dtype=np.int64)
    if init in (OK, RESOLVED) and not s.any():
        return Machine(empty, empty, empty, empty, init, -1)
    u = c_false | r_true
    # events only (unknown samples hold the state): armed runs from their set/cancel pattern
    ev = np.flatnonzero(s | u)
    se = s[ev]
    armed0 = init == PENDING
    # events whose kind (set/cancel) differs from the previous one's (before all: armed0)
    flip = np.flatnonzero(se[1:] != se[:-1]) + 1
    if se.size and se[0] != armed0:
        flip = np.concatenate(([0], flip))
    at_flip, up = ev[flip].astype(np.int64, copy=False), se[flip]
    starts, ends = at_flip[up], at_flip[~up]
    if armed0:
        starts = np.concatenate(([-1], starts))
    if ends.size < starts.size:
        ends = np.concatenate((ends, [n]))
    thr = np.where(starts >= 0, starts + k_for, pending_thr)
    s_idx = np.flatnonzero(s).astype(np.int64, copy=False)
    r_idx = np.flatnonzero(r_true).astype(np.int64, copy=False)
    fire = next_index(s_idx, thr, n)
    fired = fire < ends
    # episodes: (firing from state) + fired runs, merged when they share their end
    ep_f = fire[fired]
    if init == FIRING:
        ep_f = np.concatenate(([-1], ep_f))
    ep_e = next_index(r_idx, np.maximum(ep_f, 0), n)
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
    at = np.concatenate(at_parts).astype(np.int64, copy=False)
    to = np.concatenate(to_parts).astype(np.int64, copy=False)
    order = np.argsort(at, kind="stable")
    at, to = at[order], to[order]
    final, since = (int(to[-1]), -1) if at.size else (init, -1)
    if ep_e.size and ep_e[-1] == n:
        final, since = FIRING, int(ep_f[-1])
    elif starts.size and ends[-1] == n and own[-1] and not fired[-1]:
        final, since = PENDING, int(starts[-1])
    return Machine(at, to, ep_f, ep_e, final, since)
