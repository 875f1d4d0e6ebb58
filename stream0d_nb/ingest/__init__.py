"""File readers: ``open_source`` turns a CSV/TSV, Excel, Parquet or JSON file into a ``Source``.

Format by extension (``.csv .tsv .txt .dat``, ``.xlsx``, ``.parquet .pq``, ``.json .jsonl
.ndjson``) unless ``options.format`` says otherwise. Every problem is an ``IngestError``
naming file, line, column and value, and the option that fixes it.
"""

from __future__ import annotations

import csv
from pathlib import Path

from stream0d_nb.errors import Fix, IngestError, Location
from stream0d_nb.ingest.types import Counters, RawBatch, Source, SourceInfo
from stream0d_nb.specs import IngestOptions

__all__ = [
    "Counters",
    "RawBatch",
    "Source",
    "SourceInfo",
    "detect_format",
    "open_source",
]

_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".dat": "csv",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}


def detect_format(path: str | Path, options: IngestOptions | None = None) -> str:
    """``csv``, ``excel``, ``parquet`` or ``json`` from ``options.format`` or the extension."""
    if options is not None and options.format != "auto":
        return options.format
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    for s in reversed(suffixes):
        if s in _EXTENSIONS:
            return _EXTENSIONS[s]
    raise IngestError(
        f"cannot tell the format of {p.name!r} from its extension",
        [Location(str(p))],
        [Fix("format", f) for f in ("csv", "excel", "parquet", "json")],
    )


def open_source(path: str | Path, options: IngestOptions, default_tz: str = "UTC") -> Source:
    """Open ``path`` for reading: ``info`` is filled now, rows come from ``batches()``.

    ``default_tz`` is the zone of naive times when ``options`` give neither ``tz`` nor
    ``utc_offset`` (normally the dataset's zone).
    """
    p = Path(path)
    if not p.is_file():
        raise IngestError(f"no such file: {p}", [Location(str(p))])
    fmt = detect_format(p, options)
    if fmt == "csv":
        from stream0d_nb.ingest.readers import open_csv

        with p.open("rb") as fh:
            magic = fh.read(4)
        if magic[:2] == b"\x1f\x8b" or magic == b"PK\x03\x04":
            kind = "gzip" if magic[:2] == b"\x1f\x8b" else "zip"
            raise IngestError(
                f"{p.name}: this is a {kind} archive, not a text file; decompress it first",
                [Location(str(p))],
            )
        try:
            return open_csv(p, options, default_tz)
        except csv.Error as exc:
            raise IngestError(
                f"{p.name}: cannot split the file into CSV fields ({exc}); old Mac line ends "
                "(CR only) and stray carriage returns inside lines are not supported",
                [Location(str(p))],
            ) from None
    from stream0d_nb.ingest import tabular

    if fmt == "excel":
        return tabular.open_excel(p, options, default_tz)
    if fmt == "parquet":
        return tabular.open_parquet(p, options, default_tz)
    return tabular.open_json(p, options, default_tz)
