"""The plot kinds, shared by ``ds.s0d.plot`` and the client front: names and channel counts.

``line``, ``scatter``, ``carpet``, ``hist`` and ``box`` are the kinds a saved view can
hold; ``lanes`` is a line plot in stacked lanes (one per unit) and ``prediction`` plots
a measured and a predicted channel with their residual.
"""

from __future__ import annotations

from collections.abc import Sequence

from stream0d_nb.errors import ValidationError

KINDS: tuple[str, ...] = ("line", "lanes", "scatter", "carpet", "hist", "box", "prediction")
CHANNELS_NEEDED = {"scatter": 2, "prediction": 2, "carpet": 1}


def check_kind(kind: str) -> str:
    """``kind`` if it is a plot kind; else an error listing them."""
    if kind not in KINDS:
        raise ValidationError(f"plot kind {kind!r} unknown; use one of {', '.join(KINDS)}")
    return kind


def check_count(kind: str, names: Sequence[str]) -> list[str]:
    """The channels of a plot of ``kind``, checked against how many it draws."""
    need = CHANNELS_NEEDED.get(kind)
    if need is not None and len(names) != need:
        what = {
            "scatter": "two channels (x and y)",
            "prediction": "two channels (measured and predicted)",
            "carpet": "one channel",
        }[kind]
        got = ", ".join(repr(n) for n in names) or "none"
        raise ValidationError(f"a {kind} plot needs {what}; got {got}")
    if not names:
        raise ValidationError(f"a {kind} plot needs at least one channel")
    return list(names)
