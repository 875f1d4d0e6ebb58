"""Layout detection for delimited text files: encoding, delimiter, decimal mark, header, units.

Works on the first few tens of KB of a file only, so that detection costs nothing next to
reading. Every result can be overridden by the matching ``IngestOptions`` field.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections import Counter
from dataclasses import dataclass, field

from stream0d_nb.errors import Fix, IngestError, Location

HEAD_BYTES = 256 * 1024
"""How much of a text file the sniffer looks at."""
MAX_SNIFF_LINES = 200
DELIMITERS = (",", ";", "\t", "|")

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DEC_COMMA = re.compile(r"^\s*[-+]?\d+,\d+\s*$")
_DEC_POINT = re.compile(r"^\s*[-+]?\d*\.\d+(?:[eE][-+]?\d+)?\s*$")
_NUMBER_POINT = re.compile(r"^\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$")
_NUMBER_COMMA = re.compile(r"^\s*[-+]?(?:\d+,?\d*|,\d+)(?:[eE][-+]?\d+)?\s*$")
_SPECIAL_NUMBERS = {"nan", "inf", "-inf", "+inf", "infinity", "-infinity"}
_UNITS_PATTERNS = (
    re.compile(r"^(?P<name>.*?\S)\s*\[(?P<units>[^\[\]]*)\]$"),
    re.compile(r"^(?P<name>.*?\S)\s*\((?P<units>[^()]*)\)$"),
    re.compile(r"^(?P<name>.*?\S)\s+/\s+(?P<units>\S.*)$"),
)
DEFAULT_NULLS = ("", "NaN", "nan", "NAN", "NA", "N/A", "n/a", "null", "NULL", "None", "-nan")


def detect_encoding(head: bytes, option: str | None) -> tuple[str, int]:
    """Return ``(encoding, bom_length)``: a BOM wins, then valid UTF-8, else cp1252."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            if option and codecs.lookup(option).name not in (codecs.lookup(name).name, "utf-8-sig"):
                return option, 0
            return name, len(bom)
    if option:
        try:
            codecs.lookup(option)
        except LookupError as exc:
            raise IngestError(
                f"unknown encoding {option!r}",
                fixes=[Fix("encoding", "utf-8"), Fix("encoding", "cp1252")],
            ) from exc
        return option, 0
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is not a reason to give up.
        if exc.reason != "unexpected end of data":
            return "cp1252", 0
    return "utf-8", 0


def decode_head(head: bytes, encoding: str, bom: int, complete: bool) -> list[str]:
    """Decode the sample into lines (without line ends); drop a possibly cut last line."""
    text = head[bom:].decode(encoding, errors="replace")
    lines = text.split("\n")
    if (not complete and len(lines) > 1) or (lines and lines[-1] == ""):
        lines = lines[:-1]
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines[:MAX_SNIFF_LINES]]


def split_line(line: str, delimiter: str) -> list[str]:
    """Split one line with CSV quoting rules (``"a;b"`` stays one field)."""
    return next(csv.reader([line], delimiter=delimiter, quotechar='"'), [])


def is_blank(line: str) -> bool:
    """A line with nothing but white space."""
    return not line.strip()


def _stable_start(counts: list[int | None]) -> tuple[int, int, int]:
    """``(header index, usual field count, lines with that count)`` of a sample.

    The usual count is the most frequent one (ties: the larger); the header is the first
    line with that count that is followed by another such line, so a metadata block before
    it and a malformed line after it do not move it.
    """
    seen = [c for c in counts if c is not None]
    if not seen:
        return len(counts), 0, 0
    freq = Counter(seen)
    width = max(freq, key=lambda c: (freq[c], c))
    idx = [i for i, c in enumerate(counts) if c is not None]
    for k, i in enumerate(idx):
        if counts[i] != width:
            continue
        if k + 1 == len(idx) or counts[idx[k + 1]] == width:
            return i, width, freq[width]
    return idx[0], width, freq[width]


def detect_delimiter(lines: list[str], option: str | None) -> str:
    """Pick the delimiter giving the longest run of lines with the same field count (>1)."""
    if option:
        return option
    best: tuple[int, int, int] | None = None
    chosen = ","
    for rank, d in enumerate(("\t", ";", "|", ",")):
        counts: list[int | None] = [
            None if is_blank(ln) or ln.lstrip().startswith("#") else len(split_line(ln, d))
            for ln in lines
        ]
        _, width, run = _stable_start(counts)
        if width < 2:
            continue
        score = (run, -rank if d != "," else -10, width)
        if best is None or score > best:
            best, chosen = score, d
    if best is None and lines:
        raise IngestError(
            "could not detect the field delimiter (tried , ; tab |)",
            [Location("?", 1, None, lines[0][:80])],
            [Fix("delimiter", example=";")],
        )
    return chosen


def detect_header_line(lines: list[str], delimiter: str, skip_rows: int | None) -> int:
    """0-based index of the header line: the first line of the stable block (or skip_rows)."""
    if skip_rows is not None:
        return skip_rows
    counts: list[int | None] = [
        None if is_blank(ln) or ln.lstrip().startswith("#") else len(split_line(ln, delimiter))
        for ln in lines
    ]
    start, _, _ = _stable_start(counts)
    return min(start, max(len(lines) - 1, 0))


def detect_decimal(rows: list[list[str]], delimiter: str, option: str | None) -> str:
    """``','`` when the delimiter is not a comma and numbers look like ``12,5``."""
    if option:
        return option
    if delimiter == ",":
        return "."
    comma = point = 0
    for row in rows:
        for cell in row:
            if _DEC_COMMA.match(cell):
                comma += 1
            elif _DEC_POINT.match(cell):
                point += 1
    return "," if comma > point else "."


def is_number(text: str, decimal: str = ".") -> bool:
    """Whether ``text`` reads as a number with this decimal mark."""
    if text.strip().lower() in _SPECIAL_NUMBERS:
        return True
    pattern = _NUMBER_COMMA if decimal == "," else _NUMBER_POINT
    return bool(pattern.match(text))


def split_units(header: str) -> tuple[str, str | None]:
    """``'Temp [degC]'`` / ``'Temp (degC)'`` / ``'Temp / bar'`` -> ``('Temp', 'degC')``."""
    h = header.strip()
    for pattern in _UNITS_PATTERNS:
        m = pattern.match(h)
        if m and m.group("units").strip():
            return m.group("name").strip(), m.group("units").strip()
    return h, None


@dataclass
class TextLayout:
    """What the sniffer found in a delimited text file."""

    encoding: str
    bom: int
    delimiter: str
    decimal: str
    header_line: int
    """1-based line number of the header."""
    headers: list[str]
    units_cells: list[str] | None
    first_data_line: int
    """1-based line number of the first data row."""
    sample: list[list[str]] = field(default_factory=list)
    sample_lines: list[int] = field(default_factory=list)


def sniff_text(
    head: bytes,
    complete: bool,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    decimal: str | None = None,
    skip_rows: int | None = None,
    units_row: bool | None = None,
    is_time_text: object = None,
) -> TextLayout:
    """Detect the layout of a delimited text file from its first bytes.

    ``is_time_text`` is a callable ``str -> bool`` used to tell a units row from data (a units
    row has no time in it); without it, any non-numeric first cell is accepted.
    """
    enc, bom = detect_encoding(head, encoding)
    lines = decode_head(head, enc, bom, complete)
    if not lines or all(is_blank(ln) for ln in lines):
        raise IngestError("the file is empty (no header line found)")
    delim = detect_delimiter(lines, delimiter)
    h = detect_header_line(lines, delim, skip_rows)
    if h >= len(lines):
        raise IngestError(
            f"skipping {skip_rows} lines before the header goes past the first {len(lines)} "
            "lines of the file",
            fixes=[Fix("skip_rows")],
        )
    headers = [c.strip() for c in split_line(lines[h], delim)]
    rest = [(i, split_line(ln, delim)) for i, ln in enumerate(lines[h + 1 :], start=h + 1)]
    rest = [(i, r) for i, r in rest if not is_blank(lines[i])]
    units_cells: list[str] | None = None
    data_rows = [r for _, r in rest]
    dec = detect_decimal(data_rows, delim, decimal)
    first_data = h + 1
    if rest:
        idx, cand = rest[0]
        want = units_row
        if want is None:
            want = idx == h + 1 and _looks_like_units_row(cand, headers, dec, is_time_text)
        if want:
            units_cells = [c.strip() for c in cand]
            first_data = idx + 1
            rest = rest[1:]
    return TextLayout(
        encoding=enc,
        bom=bom,
        delimiter=delim,
        decimal=dec,
        header_line=h + 1,
        headers=headers,
        units_cells=units_cells,
        first_data_line=first_data + 1,
        sample=[r for _, r in rest],
        sample_lines=[i + 1 for i, _ in rest],
    )


def _looks_like_units_row(
    row: list[str], headers: list[str], decimal: str, is_time_text: object
) -> bool:
    """Non-numeric (or empty) in every column, some text, and no time in it."""
    if len(row) != len(headers):
        return False
    texts = [c.strip() for c in row]
    if not any(texts):
        return False
    if any(t and is_number(t, decimal) for t in texts):
        return False
    if callable(is_time_text):
        return not any(t and is_time_text(t) for t in texts)
    return True


def units_from_cells(cells: list[str]) -> list[str | None]:
    """Units row cells -> units (brackets stripped, empty -> None)."""
    out: list[str | None] = []
    for c in cells:
        t = c.strip().strip("[]()").strip()
        out.append(t or None)
    return out


def most_common_width(rows: list[list[str]]) -> int:
    """The usual number of fields of the sample rows."""
    if not rows:
        return 0
    return Counter(len(r) for r in rows).most_common(1)[0][0]
