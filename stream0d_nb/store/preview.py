"""The ingest preview of a file into one dataset: its grid, zone and channels applied.

``stream0d_nb.ingest.preview.preview`` reads a file as ingest would; this adds what the
dataset decides (the grid staging that finds duplicates and off-grid times as ingest's
write path does, the zone of naive times, the channels it has). Shared by the API
(``POST .../ingest/preview``) and the CLI (``stream0d ingest --dry-run``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stream0d_nb.ingest.preview import preview
from stream0d_nb.ingest.types import RawBatch
from stream0d_nb.specs import DatasetSpec, IngestOptions, IngestPreview, parse_duration_ns
from stream0d_nb.store.grid import Grid
from stream0d_nb.store.writer import Staging

__all__ = ["preview_ingest"]


def preview_ingest(
    spec: DatasetSpec,
    path: str | Path,
    options: IngestOptions | None = None,
    *,
    rows: int = 20,
    truncated: bool = False,
    file: str | None = None,
) -> IngestPreview:
    """What ingesting ``path`` into the dataset of ``spec`` would do; stores nothing.

    ``file`` is the name problems give the file (default: its name); ``truncated`` marks
    the first bytes of a longer text file.
    """
    interval_ns = parse_duration_ns(spec.interval, what="interval")
    grid = Grid.for_interval(interval_ns)
    label = file or Path(path).name

    def check(channels: list[str], opts: IngestOptions) -> Callable[[RawBatch], None]:
        return Staging(grid, channels, opts, label).add

    return preview(
        path,
        options,
        limit_rows=rows,
        default_tz=spec.tz,
        interval=spec.interval,
        interval_ns=interval_ns,
        truncated=truncated,
        check=check,
        file=label,
        stored_channels=[c.name for c in spec.channels],
    )
