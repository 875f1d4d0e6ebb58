"""CSV/TSV reader: streams a delimited text file in chunks of whole lines through pyarrow.

The file is cut into chunks of about ``CHUNK_BYTES`` at line ends, each parsed by
``pyarrow.csv.read_csv`` with float64 value columns (and ISO timestamps when the samples
allow), so memory stays bounded and line numbers stay exact. A chunk pyarrow rejects is
parsed again as text to find the offending cells precisely (the slow path runs only there).

Each chunk is parsed as one block on one thread, and ``PARSE_WORKERS`` chunks are parsed at
once: every column then comes out as one contiguous array that numpy uses without a copy,
and no CPU goes to splitting chunks into blocks and stitching them together again.

The bytes read are also hashed (sha256, on a thread of its own, in file order), so the
file's checksum costs no second read of the file.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv

from stream0d_nb.errors import Fix, IngestError, Location
from stream0d_nb.ingest import dateorder, sniff, timeparse
from stream0d_nb.ingest.columns import BatchBuilder, ColumnPlan, plan_columns
from stream0d_nb.ingest.dateorder import OrderDecision
from stream0d_nb.ingest.timeparse import TimeParser
from stream0d_nb.ingest.types import Counters, RawBatch, Source, SourceInfo
from stream0d_nb.specs import IngestOptions

CHUNK_BYTES = 4 << 20
"""Bytes of text parsed at once, as one block (so each column comes out in one piece).

Small enough for the parser's intermediate data to stay in the CPU caches: 4 MB blocks
cost ~10 % less CPU than 16 MB ones."""
PARSE_WORKERS = max(1, min(4, pa.cpu_count()))
"""Chunks parsed at the same time, each on its own thread."""
MAX_BATCH_ROWS = 1 << 20


def make_time_parser(
    file: str,
    plan: ColumnPlan,
    options: IngestOptions,
    default_tz: str,
    counters: Counters,
    decision: OrderDecision | None = None,
) -> TimeParser:
    """A ``TimeParser`` configured from the options (zone, offset, format, DST policies)
    and the file's date order (``decide_order``)."""
    label = plan.time_header if plan.date_index is None else "+".join(plan.time_columns)
    return TimeParser(
        file=file,
        column=label,
        tz=options.tz or default_tz,
        offset_minutes=options.utc_offset_minutes(),
        time_format=options.time_format,
        epoch_unit=options.epoch_unit,
        ambiguous=options.ambiguous,
        nonexistent=options.nonexistent,
        counters=counters,
        decision=decision,
    )


def decide_order(
    file: str,
    plan: ColumnPlan,
    samples: list[list[object]],
    options: IngestOptions,
    scan: Callable[[int], dateorder.Scan] | None,
) -> OrderDecision | None:
    """The date order of the file's date-bearing column (the date column, else the time
    column); ``scan(i)`` reads column ``i`` of the whole file when the samples do not say."""
    col = plan.date_index if plan.date_index is not None else plan.time_index
    headers = [plan.headers[i] for i in (plan.date_index, plan.time_index) if i is not None]
    return dateorder.decide(
        file,
        plan.headers[col],
        headers,
        samples[col] if col < len(samples) else [],
        options,
        None if scan is None else scan(col),
    )


def plan_detected(plan: ColumnPlan, decision: OrderDecision | None) -> dict[str, object]:
    """What the column plan and the date order add to ``info.detected``."""
    out = dict(plan.detected)
    if decision is not None:
        out["date_order"] = decision.text()
    return out


def plan_info(info: SourceInfo, plan: ColumnPlan, decision: OrderDecision | None) -> SourceInfo:
    """``info`` with the skipped and text columns of ``plan`` and where the order came from."""
    info.skipped = dict(plan.skipped)
    info.kinds = dict(plan.kinds)
    info.date_order_from_data = decision is not None and decision.source in ("data", "convention")
    return info


def zone_detected(options: IngestOptions, default_tz: str) -> dict[str, object]:
    """How naive times are interpreted, for ``info.detected``."""
    if options.utc_offset:
        return {"naive_times": f"fixed offset {options.utc_offset}"}
    return {"naive_times": f"local time in {options.tz or default_tz}"}


def open_csv(path: Path, options: IngestOptions, default_tz: str) -> Source:
    """Sniff a delimited text file and return a streaming ``Source``."""
    file = str(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(sniff.HEAD_BYTES)
    try:
        layout = sniff.sniff_text(
            head,
            complete=size <= len(head),
            encoding=options.encoding,
            delimiter=options.delimiter,
            decimal=options.decimal,
            skip_rows=options.skip_rows,
            units_row=options.units_row,
            is_time_text=timeparse.is_time_text,
        )
    except IngestError as exc:
        raise IngestError(
            f"{file}: {exc.message}",
            [Location(file, loc.line, loc.column, loc.value) for loc in exc.locations],
            exc.fixes,
        ) from None
    ncols = len(layout.headers)
    samples: list[list[object]] = [
        [row[i] if i < len(row) else None for row in layout.sample[:100]] for i in range(ncols)
    ]
    file_units = sniff.units_from_cells(layout.units_cells) if layout.units_cells else None
    plan = plan_columns(
        file, layout.headers, samples, options, file_units=file_units, decimal=layout.decimal
    )
    counters = Counters()
    reader = _CsvReader(path, layout, plan, options, counters)
    decision = decide_order(file, plan, samples, options, reader.scanner)
    parser = make_time_parser(file, plan, options, default_tz, counters, decision)
    time_type, mode = _time_type(file, plan, samples, options, parser.order)
    reader.prepare(parser, time_type)
    detected: dict[str, object] = {
        "encoding": layout.encoding + ("-sig" if layout.bom and layout.encoding == "utf-8" else ""),
        "delimiter": layout.delimiter,
        "decimal": layout.decimal,
        "header_line": layout.header_line,
        "units_row": layout.units_cells is not None,
        "first_data_line": layout.first_data_line,
        "time_parsing": mode,
        **plan_detected(plan, decision),
        **zone_detected(options, default_tz),
    }
    info = SourceInfo(
        file=file,
        format="csv",
        channels=list(plan.channels),
        columns={
            c: plan.headers[i] for c, i in zip(plan.channels, plan.value_indices, strict=True)
        },
        units=dict(plan.units),
        time_columns=plan.time_columns,
        detected=detected,
        bytes_total=size,
    )
    plan_info(info, plan, decision)
    return Source(
        info,
        reader.batches(detected),
        counters,
        sha256=reader.sha256,
        sentinels=reader.builder.sentinels.hints,
    )


def _time_type(
    file: str,
    plan: ColumnPlan,
    samples: list[list[object]],
    options: IngestOptions,
    order: str | None = None,
) -> tuple[pa.DataType, str]:
    """Arrow type pyarrow should parse the time column into, and a description."""
    if plan.date_index is not None:
        return pa.string(), "date + time of day columns"
    if options.epoch_unit:
        t = pa.float64() if options.epoch_unit in ("s", "ms") else pa.int64()
        return t, f"epoch {options.epoch_unit}"
    if options.time_format:
        return pa.string(), f"format {options.time_format}"
    texts = [str(v).strip() for v in samples[plan.time_index] if v is not None and str(v).strip()]
    if texts and all(timeparse.ISO_NAIVE.match(t) for t in texts):
        return pa.timestamp("ns"), "ISO 8601"
    if texts and all(timeparse.ISO_AWARE.match(t) for t in texts):
        return pa.timestamp("ns", tz="UTC"), "ISO 8601 with UTC offsets"
    if texts and all(sniff.is_number(t) for t in texts):
        unit = timeparse.guess_epoch_unit([float(t) for t in texts])
        if unit is None:
            raise IngestError(
                f"time column {plan.time_header!r} holds numbers such as {texts[0]!r}, which "
                "are no epoch times of a plausible unit",
                [Location(file, None, plan.time_header, texts[0])],
                timeparse.EPOCH_OR_FORMAT,
            )
        return (pa.float64() if unit in ("s", "ms") else pa.int64()), f"epoch {unit}"
    try:
        fmt = timeparse.detect_format(texts, order) if texts else None
    except IngestError as exc:
        where = [Location(file, None, plan.time_header, texts[0])]
        raise IngestError(exc.message, where, exc.fixes) from None
    return pa.string(), f"format {fmt}" if fmt else "text"


class _CsvReader:
    """Chunked reading of one delimited text file (state shared across chunks)."""

    def __init__(
        self,
        path: Path,
        layout: sniff.TextLayout,
        plan: ColumnPlan,
        options: IngestOptions,
        counters: Counters,
    ) -> None:
        self.path = path
        self.file = str(path)
        self.layout = layout
        self.plan = plan
        self.options = options
        self.counters = counters
        ncols = len(layout.headers)
        self.names = [f"c{i}" for i in range(ncols)]
        self.used = [plan.time_index] + ([plan.date_index] if plan.date_index is not None else [])
        self.used += plan.value_indices
        self.nulls = list(dict.fromkeys([*sniff.DEFAULT_NULLS, *options.missing_values]))
        self._free: list[bytearray] = []
        self._hasher = hashlib.sha256()
        self._hashing: dict[int, Future[None]] = {}  # buffer id -> its last hash update
        self._hash_pool: ThreadPoolExecutor | None = None
        self._digest: str | None = None
        self.parse_opts = pacsv.ParseOptions(delimiter=layout.delimiter, quote_char='"')

    def prepare(self, parser: TimeParser, time_type: pa.DataType) -> None:
        """Set how rows become batches: the time parser and the time column's arrow type."""
        plan = self.plan
        self.builder = BatchBuilder(
            self.file, plan, self.options, parser, self.counters, self.layout.decimal
        )
        fast_types: dict[str, pa.DataType] = {
            self.names[i]: pa.float64() for i in plan.value_indices
        }
        fast_types[self.names[plan.time_index]] = time_type
        if plan.date_index is not None:
            fast_types[self.names[plan.date_index]] = pa.string()
        text_types = {self.names[i]: pa.string() for i in self.used}
        self.fast_opts = self._convert([self.names[i] for i in self.used], fast_types)
        self.text_opts = self._convert([self.names[i] for i in self.used], text_types)

    def _convert(self, names: list[str], types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
        return pacsv.ConvertOptions(
            column_types=types,
            include_columns=names,
            null_values=self.nulls,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            decimal_point=self.layout.decimal,
        )

    def scanner(self, index: int) -> dateorder.Scan:
        """Reads column ``index`` of the whole file as text, chunk by chunk (nothing hashed
        or counted), for what must be decided before the rows are read (the date order).

        For the first column, chunks after the first are parsed only when a quick look at
        the line starts finds a date with a field above 12: the others cannot decide.
        """

        def scan() -> Iterator[tuple[pa.Array, npt.NDArray[np.int64]]]:
            name = self.names[index]
            convert = self._convert([name], {name: pa.string()})
            for k, chunk in enumerate(self._chunks()):
                if k and index == 0 and not dateorder.lines_may_decide(chunk.data):
                    self._release(chunk)  # the first column, at line starts: nothing here
                    continue
                try:
                    table = self._read(chunk.data, convert)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    self._release(chunk)
                    return  # malformed lines: reading the rows reports them
                lines = self._line_numbers(chunk, table.num_rows, count=False)
                col = _contiguous(table.column(name))
                self._release(chunk)
                yield col, lines

        return scan

    def batches(self, detected: dict[str, object]) -> Iterator[RawBatch]:
        """All rows in file order; the next chunks are parsed in the background meanwhile."""
        slow = 0
        pending: deque[tuple[_Chunk, Future[tuple[pa.Table, int]]]] = deque()
        self._hasher, self._hashing, self._digest = hashlib.sha256(), {}, None
        with (
            ThreadPoolExecutor(PARSE_WORKERS, thread_name_prefix="csv-parse") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="csv-sha256") as self._hash_pool,
        ):
            for chunk in self._chunks():
                pending.append((chunk, pool.submit(self._parse, chunk)))
                if len(pending) > PARSE_WORKERS:
                    slow += yield from self._finish(*pending.popleft())
            while pending:
                slow += yield from self._finish(*pending.popleft())
        self._hash_pool = None
        self._digest = self._hasher.hexdigest()
        detected["time_parsing_used"] = sorted(self.builder.parser.used)
        detected["chunks_reparsed_as_text"] = slow

    def sha256(self) -> str | None:
        """The file's sha256 once ``batches`` has read it to the end, else None."""
        return self._digest

    def _hash(self, data: bytes | memoryview, buf: bytearray | None = None) -> None:
        """Hash the next bytes of the file on the hash thread (updates run in file order).

        ``data`` viewing ``buf`` must not change until hashed: ``_buffer`` waits for it.
        Outside ``batches`` (a scan before reading) nothing is hashed.
        """
        if self._hash_pool is None:
            if isinstance(data, memoryview):
                data.release()
            return

        def update() -> None:
            try:
                self._hasher.update(data)
            finally:
                if isinstance(data, memoryview):
                    data.release()

        fut = self._hash_pool.submit(update)
        if buf is not None:
            self._hashing[id(buf)] = fut

    def _finish(
        self, chunk: _Chunk, future: Future[tuple[pa.Table, int]]
    ) -> Generator[RawBatch, None, int]:
        """Convert one parsed chunk into batches; return 1 if it needed the text path."""
        table, was_slow = future.result()
        lines = self._line_numbers(chunk, table.num_rows)
        for off in range(0, table.num_rows, MAX_BATCH_ROWS):
            part = table.slice(off, MAX_BATCH_ROWS)
            cols = [_contiguous(part.column(self.names[i])) for i in self.used]
            date_arr = cols[1] if self.plan.date_index is not None else None
            values = cols[2:] if date_arr is not None else cols[1:]
            batch = self.builder.build(
                cols[0], date_arr, values, lines[off : off + MAX_BATCH_ROWS], chunk.bytes_read
            )
            if batch is not None:
                yield batch
        self._release(chunk)
        return was_slow

    def _chunks(self) -> Iterator[_Chunk]:
        """Chunks of whole lines as UTF-8, read into reused buffers without copying the bulk."""
        enc = codecs.lookup(self.layout.encoding).name
        decoder = None if enc == "utf-8" else codecs.getincrementaldecoder(enc)(errors="replace")
        skip = self.layout.first_data_line - 1
        line_no = 1
        rest = b""
        with open(self.path, "rb") as f:
            self._hash(f.read(self.layout.bom))
            while True:
                if decoder is None:
                    buf = self._buffer(len(rest) + CHUNK_BYTES)
                    buf[: len(rest)] = rest
                    n = f.readinto(memoryview(buf)[len(rest) : len(rest) + CHUNK_BYTES])
                    if n:
                        self._hash(memoryview(buf)[len(rest) : len(rest) + n], buf)
                    size = len(rest) + n
                    eof = n == 0
                else:
                    raw = f.read(CHUNK_BYTES)
                    self._hash(raw)
                    eof = not raw
                    buf = bytearray(rest)
                    buf += decoder.decode(raw, final=eof).encode("utf-8")
                    size = len(buf)
                rest = b""
                start = 0
                while skip:
                    k = buf.find(b"\n", start, size)
                    if k < 0:
                        break
                    start = k + 1
                    skip -= 1
                    line_no += 1
                end = size if eof else buf.rfind(b"\n", start, size) + 1
                if (skip or end == 0) and not eof:
                    rest = bytes(memoryview(buf)[start:size])
                    self._free.append(buf)
                    continue
                rest = bytes(memoryview(buf)[end:size])
                view = memoryview(buf)[start:end]
                newlines = int(np.count_nonzero(np.frombuffer(view, np.uint8) == 10))
                if _has_text(view):
                    yield _Chunk(view, line_no, newlines, f.tell(), buf)
                else:
                    view.release()
                    self._free.append(buf)
                line_no += newlines
                if eof:
                    return

    def _buffer(self, size: int) -> bytearray:
        """A read buffer of at least ``size`` bytes: a released one when there is one.

        Reusing buffers saves allocating, zero-filling and page-faulting each chunk's memory.
        """
        while self._free:
            buf = self._free.pop()
            if len(buf) >= size:
                hashing = self._hashing.pop(id(buf), None)
                if hashing is not None:
                    hashing.result()  # the hash thread still reads this buffer
                return buf
        return bytearray(max(size, CHUNK_BYTES + (64 << 10)))  # room for a partial line

    def _release(self, chunk: _Chunk) -> None:
        """Give a finished chunk's buffer back for reuse.

        ``release()`` raises ``BufferError`` if anything still exported the bytes (so a
        buffer pyarrow kept would fail loudly, never be overwritten under it).
        """
        chunk.data.release()
        if chunk.buf is not None:
            self._free.append(chunk.buf)

    def _parse(self, chunk: _Chunk) -> tuple[pa.Table, int]:
        """Fast typed parse; on any rejection parse as text (exact cells found later)."""
        try:
            return self._read(chunk.data, self.fast_opts), 0
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        try:
            return self._read(chunk.data, self.text_opts), 1
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            self._raise_bad_rows(bytes(chunk.data), chunk.first_line, exc)
            raise AssertionError("unreachable") from exc

    def _read(self, data: memoryview, convert: pacsv.ConvertOptions) -> pa.Table:
        # One block for the whole chunk, parsed on this thread (chunks run in parallel).
        opts = pacsv.ReadOptions(
            column_names=self.names, block_size=len(data) + 1, use_threads=False
        )
        return pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=opts,
            parse_options=self.parse_opts,
            convert_options=convert,
        )

    def _raise_bad_rows(self, chunk: bytes, first_line: int, exc: Exception) -> None:
        """Find lines whose field count differs from the header's and report them."""
        want = len(self.layout.headers)
        locs: list[Location] = []
        for i, raw in enumerate(chunk.decode("utf-8", "replace").split("\n")):
            line = raw.rstrip("\r")
            if not line:
                continue
            got = len(sniff.split_line(line, self.layout.delimiter))
            if got != want:
                locs.append(Location(self.file, first_line + i, None, line[:120]))
                if len(locs) >= 10:
                    break
        if locs:
            raise IngestError(
                f"{len(locs)}+ line(s) do not have the {want} fields of the header (delimiter "
                f"{self.layout.delimiter!r}); fix them, or say which delimiter and header line "
                "the file has",
                locs,
                [Fix("delimiter"), Fix("skip_rows")],
            ) from None
        raise IngestError(
            f"cannot read lines {first_line}.. of the file: {exc}",
            [Location(self.file, first_line)],
        ) from None

    def _line_numbers(self, chunk: _Chunk, rows: int, count: bool = True) -> npt.NDArray[np.int64]:
        """1-based file line of each parsed row (pyarrow drops blank lines; ``count`` adds
        them to the rows skipped)."""
        first_line = chunk.first_line
        nlines = chunk.newlines + (0 if chunk.data[-1] == 10 else 1)
        if rows == nlines:
            return np.arange(first_line, first_line + rows, dtype=np.int64)
        buf = np.frombuffer(chunk.data, np.uint8)
        nl = np.flatnonzero(buf == 10)
        starts = np.concatenate([[0], nl + 1])[:nlines]
        ends = np.concatenate([nl, [len(buf)]])[:nlines]
        length = ends - starts
        has_cr = (length > 0) & (buf[np.maximum(ends - 1, 0)] == 13)
        nonempty = np.flatnonzero((length - has_cr) > 0)
        if count:
            self.counters.rows_skipped += max(nlines - len(nonempty), 0)
        if len(nonempty) == rows:
            return (nonempty + first_line).astype(np.int64)
        return np.arange(first_line, first_line + rows, dtype=np.int64)


def _contiguous(col: pa.ChunkedArray) -> pa.Array:
    """The column as one array: its only chunk as it is (``combine_chunks`` would copy)."""
    if col.num_chunks == 1:
        return col.chunk(0)
    return col.combine_chunks()


@dataclass
class _Chunk:
    """Whole lines of UTF-8 text and where they sit in the file."""

    data: memoryview
    first_line: int
    newlines: int
    bytes_read: int
    buf: bytearray | None = None
    """The reusable buffer ``data`` is a view of."""


def _has_text(view: memoryview) -> bool:
    """Whether a chunk holds anything but white space (cheap for normal chunks)."""
    head = bytes(view[:4096])
    if not head.isspace():
        return bool(head)
    return len(view) > len(head) and not bytes(view).isspace()


def file_size(path: Path) -> int:
    """Size in bytes (0 if unknown)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
