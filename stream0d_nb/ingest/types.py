"""The contract between file readers and the store: batches of UTC times and float64 columns.

Readers turn a file into a ``Source``: what was detected (``SourceInfo``) and an iterator
of ``RawBatch`` in file order. Times are already UTC nanoseconds (time zones, DST,
offsets, epochs resolved); values are float64 with NaN for missing. Gridding, duplicate
and off-grid policies and merging with stored data happen after this, in the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream0d_nb.specs import SentinelHint


@dataclass
class RawBatch:
    """Consecutive rows of a file: one time per row and one float64 array per channel."""

    times: npt.NDArray[np.int64]
    values: dict[str, npt.NDArray[np.float64]]
    lines: npt.NDArray[np.int64]
    """1-based line (text files) or row (Excel sheet row, Parquet/JSON record + 1) per row."""
    bytes_read: int = 0
    """Bytes of the file consumed so far (for progress bars); 0 when unknown."""


@dataclass
class SourceInfo:
    """What a reader found out about a file before reading its rows."""

    file: str
    format: str
    channels: list[str]
    """Channel names in file order, after rename/skip."""
    columns: dict[str, str]
    """Channel name -> original column header (for error messages)."""
    units: dict[str, str | None]
    """Channel -> units found in the file (header brackets or units row), else None."""
    time_columns: list[str]
    detected: dict[str, object] = field(default_factory=dict)
    """Detected layout: delimiter, decimal, encoding, header line, time parsing used..."""
    bytes_total: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    """Columns not read (header -> ``'skip_columns'`` or ``'text'``: text_columns='skip')."""
    kinds: dict[str, str] = field(default_factory=dict)
    """Header -> ``'number'``, ``'text'`` or ``'empty'`` as the samples show (not time)."""
    date_order_from_data: bool = False
    """The date order was decided from the file's dates (not an option, hint or format)."""

    @property
    def skipped_columns(self) -> list[str]:
        """Headers of the columns not read, in file order."""
        return list(self.skipped)


@dataclass
class Counters:
    """Counts a reader accumulates while iterating (read after the iterator is exhausted)."""

    rows_read: int = 0
    rows_skipped: int = 0
    """Blank lines or rows without any value."""
    bad_cells_missing: int = 0
    """Unparseable cells turned into missing under ``bad_values='missing'``."""
    rows_dropped_time: int = 0
    """Rows dropped by ``nonexistent='drop'``."""


class Source:
    """A readable input: ``info`` up front, then ``batches()`` once, then ``counters``."""

    def __init__(
        self,
        info: SourceInfo,
        batches: Iterator[RawBatch],
        counters: Counters,
        sha256: Callable[[], str | None] | None = None,
        sentinels: Callable[[], list[SentinelHint]] | None = None,
    ) -> None:
        self.info = info
        self._batches = batches
        self.counters = counters
        self._sha256 = sha256
        self._sentinels = sentinels

    def sentinels(self) -> list[SentinelHint]:
        """Probable missing-value sentinels among the values read so far."""
        return [] if self._sentinels is None else self._sentinels()

    def sha256(self) -> str | None:
        """The file's sha256 when the reader hashed what it read and read it all, else None."""
        return None if self._sha256 is None else self._sha256()

    def batches(self) -> Iterator[RawBatch]:
        """The rows in file order, in batches of bounded size."""
        return self._batches
