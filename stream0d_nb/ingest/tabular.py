"""Excel, Parquet and JSON readers: typed or cell-based inputs sharing the column logic.

Line numbers: Excel rows are sheet row numbers; Parquet rows are record index + 1; JSON
records/columns are record index + 1; JSON Lines rows are file line numbers (the same as
record index + 1 when the file has no blank lines).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from stream0d_nb.errors import Fix, IngestError, Location
from stream0d_nb.ingest import sniff, timeparse
from stream0d_nb.ingest.columns import BatchBuilder, ColumnPlan, plan_columns
from stream0d_nb.ingest.dateorder import OrderDecision, Scan
from stream0d_nb.ingest.readers import (
    decide_order,
    make_time_parser,
    plan_detected,
    plan_info,
    zone_detected,
)
from stream0d_nb.ingest.types import Counters, RawBatch, Source, SourceInfo
from stream0d_nb.safetext import json_depth
from stream0d_nb.specs import IngestOptions

ROWS_PER_BATCH = 100_000
JSON_MAX_DEPTH = 32
"""Deepest JSON nesting read (records and columns are 2 deep); Python's parser recurses."""
PARQUET_BATCH = 256 * 1024
HEAD_ROWS = 200


def to_arrow(cells: Sequence[object]) -> pa.Array:
    """A list of Python cells -> arrow array; mixed types become text (checked later)."""
    try:
        arr = pa.array(cells, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([None if c is None else str(c) for c in cells], pa.string())
    if pa.types.is_time(arr.type) or pa.types.is_null(arr.type):
        return arr
    if pa.types.is_struct(arr.type) or pa.types.is_list(arr.type):
        return pa.array([None if c is None else str(c) for c in cells], pa.string())
    return arr


def _info(
    file: str,
    fmt: str,
    plan: ColumnPlan,
    detected: dict[str, object],
    options: IngestOptions,
    default_tz: str,
    size: int,
    decision: OrderDecision | None,
) -> SourceInfo:
    info = SourceInfo(
        file=file,
        format=fmt,
        channels=list(plan.channels),
        columns={
            c: plan.headers[i] for c, i in zip(plan.channels, plan.value_indices, strict=True)
        },
        units=dict(plan.units),
        time_columns=plan.time_columns,
        detected={
            **detected,
            **plan_detected(plan, decision),
            **zone_detected(options, default_tz),
        },
        bytes_total=size,
    )
    return plan_info(info, plan, decision)


def _row_batches(
    rows: Iterable[tuple[int, Sequence[object]]],
    plan: ColumnPlan,
    builder: BatchBuilder,
    detected: dict[str, object],
) -> Iterator[RawBatch]:
    """Rows of Python cells (with their line numbers) -> RawBatches of ROWS_PER_BATCH."""
    it = iter(rows)
    while True:
        block = list(islice(it, ROWS_PER_BATCH))
        if not block:
            break
        lines = np.fromiter((ln for ln, _ in block), np.int64, len(block))

        def col(i: int, block: list[tuple[int, Sequence[object]]] = block) -> pa.Array:
            return to_arrow([r[i] if i < len(r) else None for _, r in block])

        date_arr = col(plan.date_index) if plan.date_index is not None else None
        batch = builder.build(
            col(plan.time_index), date_arr, [col(i) for i in plan.value_indices], lines
        )
        if batch is not None:
            yield batch
    detected["time_parsing_used"] = sorted(builder.parser.used)


def _text_blocks(
    cells: Iterable[tuple[int, object]],
) -> Iterator[tuple[pa.Array, npt.NDArray[np.int64]]]:
    """(line, cell) pairs as blocks of text cells (others missing) for a date-order scan."""
    it = iter(cells)
    while block := list(islice(it, ROWS_PER_BATCH)):
        texts = [c if isinstance(c, str) else None for _, c in block]
        yield (
            pa.array(texts, pa.string()),
            np.fromiter((n for n, _ in block), np.int64, len(block)),
        )


def _samples(rows: Sequence[Sequence[object]], ncols: int) -> list[list[object]]:
    return [[r[i] if i < len(r) else None for r in rows[:100]] for i in range(ncols)]


def _typed_time(samples: list[list[object]]) -> list[bool]:
    out = []
    for col in samples:
        vals = [v for v in col if v is not None]
        out.append(bool(vals) and all(isinstance(v, dt.datetime) for v in vals))
    return out


# -- Excel --------------------------------------------------------------------------------


def open_excel(path: Path, options: IngestOptions, default_tz: str) -> Source:
    """Read the first (or the chosen) sheet of an .xlsx file row by row with openpyxl."""
    import openpyxl

    file = str(path)
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for broken files
        raise IngestError(f"{file}: not a readable .xlsx workbook ({exc})") from None
    sheet = options.sheet
    try:
        if sheet is None:
            ws = wb.worksheets[0]
        elif isinstance(sheet, int):
            ws = wb.worksheets[sheet]
        elif sheet not in wb.sheetnames and sheet.isdigit():  # "2" = third sheet, unless named so
            ws = wb.worksheets[int(sheet)]
        else:
            ws = wb[sheet]
    except (KeyError, IndexError):
        raise IngestError(
            f"{file}: no sheet {sheet!r}; sheets are: " + ", ".join(map(repr, wb.sheetnames)),
            fixes=[Fix("sheet", name) for name in wb.sheetnames],
        ) from None
    all_rows = (
        (n, tuple(_excel_cell(c) for c in row))
        for n, row in enumerate(ws.iter_rows(values_only=True), start=1)
    )
    head = list(islice(all_rows, HEAD_ROWS))
    nonblank = [(n, r) for n, r in head if any(c is not None for c in r)]
    if not nonblank:
        raise IngestError(f"{file}: the sheet is empty")
    widths = [
        max((i + 1 for i, c in enumerate(r) if c is not None), default=0) for _, r in nonblank
    ]
    if options.skip_rows is not None:
        hdr_pos = next((k for k, (n, _) in enumerate(nonblank) if n > options.skip_rows), 0)
    else:
        top = max(widths)
        hdr_pos = (
            next(
                k
                for k, (_, r) in enumerate(nonblank)
                if widths[k] == top
                and all(isinstance(c, str) and not sniff.is_number(c) for c in r[: widths[k]] if c)
            )
            if any(widths[k] == top for k in range(len(widths)))
            else 0
        )
    header_row, header = nonblank[hdr_pos]
    ncols = max(widths)
    headers = [("" if c is None else str(c)).strip() for c in header[:ncols]]
    headers += [""] * (ncols - len(headers))
    after = [(n, r) for n, r in head if n > header_row]
    units_cells: list[str] | None = None
    if after:
        n1, r1 = after[0]
        cells = list(r1[:ncols])
        want = options.units_row
        if want is None:
            want = n1 == header_row + 1 and _excel_units_row(cells)
        if want:
            units_cells = ["" if c is None else str(c) for c in cells]
            after = after[1:]
    samples = _samples([r for _, r in after], ncols)
    file_units = sniff.units_from_cells(units_cells) if units_cells else None
    plan = plan_columns(
        file, headers, samples, options, file_units=file_units, typed_time=_typed_time(samples)
    )
    first_data = header_row + (2 if units_cells is not None else 1)

    def scan(i: int) -> Scan:
        def cells() -> Iterator[tuple[int, object]]:
            column = ws.iter_rows(
                min_row=first_data, min_col=i + 1, max_col=i + 1, values_only=True
            )
            for n, row in enumerate(column, start=first_data):
                yield n, row[0] if row else None

        return lambda: _text_blocks(cells())

    counters = Counters()
    decision = decide_order(file, plan, samples, options, scan)
    parser = make_time_parser(file, plan, options, default_tz, counters, decision)
    builder = BatchBuilder(file, plan, options, parser, counters)
    detected: dict[str, object] = {
        "sheet": ws.title,
        "header_line": header_row,
        "units_row": units_cells is not None,
    }
    rows = ((n, r) for n, r in _chain(head, all_rows) if n >= first_data)
    info = _info(file, "excel", plan, detected, options, default_tz, path.stat().st_size, decision)

    def gen() -> Iterator[RawBatch]:
        try:
            yield from _row_batches(rows, plan, builder, info.detected)
        finally:
            wb.close()

    return Source(info, gen(), counters, sentinels=builder.sentinels.hints)


def _chain(
    head: list[tuple[int, tuple[object, ...]]], rest: Iterator[tuple[int, tuple[object, ...]]]
) -> Iterator[tuple[int, tuple[object, ...]]]:
    yield from head
    yield from rest


def _excel_cell(c: object) -> object:
    """Empty strings are empty cells; Excel times of day stay ``datetime.time``."""
    if isinstance(c, str) and not c.strip():
        return None
    return c


def _excel_units_row(cells: list[object]) -> bool:
    texts = [c for c in cells if c is not None]
    return bool(texts) and all(
        isinstance(c, str) and not sniff.is_number(c) and not timeparse.is_time_text(c)
        for c in texts
    )


# -- Parquet ------------------------------------------------------------------------------


def open_parquet(path: Path, options: IngestOptions, default_tz: str) -> Source:
    """Stream a Parquet file by record batches; timestamp columns keep their zone."""
    file = str(path)
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"{file}: not a readable Parquet file ({exc})") from None
    schema = pf.schema_arrow
    headers = list(schema.names)
    first = next(pf.iter_batches(batch_size=100), None)
    samples = (
        [first.column(i).to_pylist() for i in range(len(headers))]
        if first is not None
        else [[] for _ in headers]
    )
    typed = [pa.types.is_timestamp(f.type) or pa.types.is_date(f.type) for f in schema]
    file_units: list[str | None] = []
    for f in schema:
        meta = f.metadata or {}
        u = meta.get(b"units")
        file_units.append(u.decode() if u else None)
    plan = plan_columns(file, headers, samples, options, file_units=file_units, typed_time=typed)

    def scan(i: int) -> Scan:
        def blocks() -> Iterator[tuple[pa.Array, npt.NDArray[np.int64]]]:
            offset = 0
            for rb in pf.iter_batches(batch_size=PARQUET_BATCH, columns=[headers[i]]):
                n = rb.num_rows
                yield rb.column(0), np.arange(offset + 1, offset + n + 1, dtype=np.int64)
                offset += n

        return blocks

    counters = Counters()
    decision = decide_order(file, plan, samples, options, scan)
    parser = make_time_parser(file, plan, options, default_tz, counters, decision)
    builder = BatchBuilder(file, plan, options, parser, counters)
    info = _info(
        file,
        "parquet",
        plan,
        {"rows": pf.metadata.num_rows},
        options,
        default_tz,
        path.stat().st_size,
        decision,
    )
    used = [plan.time_index] + ([plan.date_index] if plan.date_index is not None else [])
    used += plan.value_indices
    names = [headers[i] for i in used]

    def gen() -> Iterator[RawBatch]:
        offset = 0
        for rb in pf.iter_batches(batch_size=PARQUET_BATCH, columns=list(dict.fromkeys(names))):
            n = rb.num_rows
            lines = np.arange(offset + 1, offset + n + 1, dtype=np.int64)
            offset += n
            cols = [rb.column(rb.schema.get_field_index(h)) for h in names]
            date_arr = cols[1] if plan.date_index is not None else None
            values = cols[2:] if date_arr is not None else cols[1:]
            batch = builder.build(cols[0], date_arr, values, lines)
            if batch is not None:
                yield batch
        info.detected["time_parsing_used"] = sorted(parser.used)

    return Source(info, gen(), counters, sentinels=builder.sentinels.hints)


# -- JSON ---------------------------------------------------------------------------------


def open_json(path: Path, options: IngestOptions, default_tz: str) -> Source:
    """JSON records (``[{...}]``), columns (``{"time": [...]}``) or JSON Lines."""
    file = str(path)
    lines_mode = path.suffix.lower() in (".jsonl", ".ndjson")
    data: object = None
    if not lines_mode:
        text = path.read_text(encoding="utf-8-sig")
        _check_json_depth(text, Location(file))
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if "Extra data" not in str(exc):
                raise IngestError(
                    f"{file}: not valid JSON ({exc.msg})",
                    [Location(file, exc.lineno, None, None)],
                ) from None
            lines_mode = True
    if lines_mode:
        return _open_json_lines(path, options, default_tz)
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        headers = [str(k) for k in data]
        cols = list(data.values())
        nrows = max(len(c) for c in cols)
        records: list[Sequence[object]] = [
            tuple(c[i] if i < len(c) else None for c in cols) for i in range(nrows)
        ]
        shape = "columns"
    elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
        headers = list(dict.fromkeys(str(k) for r in data for k in r))
        records = [tuple(r.get(h) for h in headers) for r in data]
        shape = "records"
    else:
        raise IngestError(
            f"{file}: JSON must be a list of records, an object of equal-length lists, or JSON "
            "Lines (one object per line)"
        )
    numbered = list(enumerate(records, start=1))
    return _json_source(
        file,
        headers,
        numbered,
        iter(()),
        shape,
        options,
        default_tz,
        path.stat().st_size,
        lambda: iter(numbered),
    )


def _check_json_depth(text: str, where: Location) -> None:
    """An IngestError when ``text`` nests deeper than ``JSON_MAX_DEPTH`` (checked unparsed).

    Counting brackets first keeps the exact (slower) count for texts that could be deep.
    """
    if text.count("[") + text.count("{") <= JSON_MAX_DEPTH:
        return
    depth = json_depth(text)
    if depth > JSON_MAX_DEPTH:
        raise IngestError(
            f"{where.file}: JSON nested {depth:,} levels deep; at most {JSON_MAX_DEPTH} are "
            "read (records and columns are 2 deep)",
            [where],
        )


def _open_json_lines(path: Path, options: IngestOptions, default_tz: str) -> Source:
    file = str(path)
    f = open(path, encoding="utf-8-sig")  # noqa: SIM115 - closed by the generator

    def parsed() -> Iterator[tuple[int, dict[str, object]]]:
        with f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                _check_json_depth(line, Location(file, n))
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise IngestError(
                        f"invalid JSON on a JSON Lines line ({exc.msg})",
                        [Location(file, n, None, line.strip()[:120])],
                    ) from None
                if not isinstance(obj, dict):
                    raise IngestError(
                        "each JSON Lines line must be an object",
                        [Location(file, n, None, line[:120])],
                    )
                yield n, obj

    it = parsed()
    head = list(islice(it, HEAD_ROWS))
    headers = list(dict.fromkeys(str(k) for _, r in head for k in r))

    def rows(
        src: Iterable[tuple[int, dict[str, object]]],
    ) -> Iterator[tuple[int, Sequence[object]]]:
        for n, r in src:
            extra = [k for k in r if k not in headers]
            if extra:
                raise IngestError(
                    f"field {extra[0]!r} first appears after the first {HEAD_ROWS} lines; "
                    "put it in the first records or name the columns to read",
                    [Location(file, n, extra[0])],
                    [Fix("columns")],
                )
            yield n, tuple(r.get(h) for h in headers)

    def again() -> Iterator[tuple[int, Sequence[object]]]:
        """The file's records once more (to scan a column before reading): the first
        ``HEAD_ROWS``, then each line parsed again up to any line reading will refuse."""
        yield from rows(head)
        last = head[-1][0] if head else 0
        with open(path, encoding="utf-8-sig") as g:
            for n, line in enumerate(g, start=1):
                if n <= last or not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    return
                if not isinstance(obj, dict):
                    return
                yield n, tuple(obj.get(h) for h in headers)

    return _json_source(
        file,
        headers,
        list(rows(head)),
        rows(it),
        "lines",
        options,
        default_tz,
        path.stat().st_size,
        again,
    )


def _json_source(
    file: str,
    headers: list[str],
    head: list[tuple[int, Sequence[object]]],
    rest: Iterator[tuple[int, Sequence[object]]],
    shape: str,
    options: IngestOptions,
    default_tz: str,
    size: int,
    again: Callable[[], Iterator[tuple[int, Sequence[object]]]],
) -> Source:
    """``again()`` gives every record once more, for scanning one column before reading."""
    samples = _samples([r for _, r in head], len(headers))
    plan = plan_columns(file, headers, samples, options)

    def scan(i: int) -> Scan:
        return lambda: _text_blocks((n, r[i] if i < len(r) else None) for n, r in again())

    counters = Counters()
    decision = decide_order(file, plan, samples, options, scan)
    parser = make_time_parser(file, plan, options, default_tz, counters, decision)
    builder = BatchBuilder(file, plan, options, parser, counters)
    info = _info(file, "json", plan, {"json_shape": shape}, options, default_tz, size, decision)

    def all_rows() -> Iterator[tuple[int, Sequence[object]]]:
        yield from head
        yield from rest

    return Source(
        info,
        _row_batches(all_rows(), plan, builder, info.detected),
        counters,
        sentinels=builder.sentinels.hints,
    )
