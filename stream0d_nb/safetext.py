"""Text people type that other people later read: characters refused, JSON depth, spreadsheet cells.

No I/O. Three guards used at every door (pydantic models, API middleware, exports):

- ``check_text``: names, titles, units, labels and links refuse NUL, C0/C1 control
  characters and DEL, bidi overrides/isolates (U+202A-U+202E, U+2066-U+2069), zero-width
  characters (U+200B-U+200F, U+2060, U+FEFF) and line/paragraph separators (U+2028,
  U+2029): text that renders differently from what it is (a reversed file name, an
  invisible character in a channel name, a fake log line). Multi-line fields
  (descriptions) also accept newline and tab, and take Windows line ends (CRLF) as newlines.
- ``json_depth``: how deeply a JSON text nests, counted without parsing it (Python's
  parser recurses, so a 200,000-deep text would exhaust the stack).
- ``spreadsheet_safe``: text cells that a spreadsheet would run as a formula (OWASP
  "CSV injection") get a leading single quote.
"""

from __future__ import annotations

import re
from typing import Annotated

import numpy as np
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

MULTILINE_ALLOWED = frozenset("\n\t")
"""What a multi-line field (a description) accepts beyond printable text."""


def _kind(cp: int) -> str | None:
    """The name of what is wrong with code point ``cp`` (None when it is allowed)."""
    if cp == 0:
        return "NUL"
    if cp < 0x20 or cp == 0x7F:
        return "control character"
    if 0x80 <= cp <= 0x9F:
        return "C1 control character"
    if 0x202A <= cp <= 0x202E:
        return "bidi override"
    if 0x2066 <= cp <= 0x2069:
        return "bidi isolate"
    if 0x200B <= cp <= 0x200F or cp in (0x2060, 0xFEFF):
        return "zero-width character"
    if cp in (0x2028, 0x2029):
        return "line separator"
    return None


_SUSPECT = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]")


def unsafe_character(value: str, *, multiline: bool = False) -> tuple[int, str, str] | None:
    """``(position, 'U+202E', kind)`` of the first refused character of ``value``, or None.

    Positions count characters from 0, as Python's own codec errors do.
    """
    for m in _SUSPECT.finditer(value):
        ch = m.group()
        if multiline and ch in MULTILINE_ALLOWED:
            continue
        kind = _kind(ord(ch))
        if kind is not None:
            return m.start(), f"U+{ord(ch):04X}", kind
    return None


def check_text(value: str, field: str = "", *, multiline: bool = False) -> str:
    """``value`` if it holds no refused character, else a ValueError naming it.

    The message reads ``contains U+202E (bidi override) at position 4`` (prefixed with
    ``field:`` when given); pydantic shows it under the field's location, so models pass
    no ``field``. Multi-line values come back with CRLF turned into LF.
    """
    if multiline and "\r" in value:
        value = value.replace("\r\n", "\n")
    bad = unsafe_character(value, multiline=multiline)
    if bad is None:
        return value
    pos, code, kind = bad
    prefix = f"{field}: " if field else ""
    raise PydanticCustomError(
        "unsafe_text",
        prefix + "contains {code} ({kind}) at position {position}",
        {"code": code, "kind": kind, "position": pos},
    )


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes | str) -> int:
    """How deeply the arrays and objects of a JSON text nest (``[[1]]`` is 2), unparsed.

    Strings are blanked first (brackets inside them do not count), then the brackets are
    counted with numpy, so a 100 MB text takes well under a second. Invalid JSON gives some
    number; the parser that runs afterwards reports the syntax error.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    brackets = _JSON_STRING.sub(b'""', raw).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    arr = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((arr == ord("[")) | (arr == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


SPREADSHEET_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make Excel, LibreOffice or Sheets treat a text cell as a formula."""


def _multiline(value: str) -> str:
    return check_text(value, multiline=True)


Line = Annotated[str, AfterValidator(check_text)]
"""A one-line text field of a model (titles, units, labels): ``check_text`` on it."""
Text = Annotated[str, AfterValidator(_multiline)]
"""A multi-line text field of a model (descriptions): newline and tab allowed."""


def spreadsheet_safe(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would run it as a formula.

    For text cells and headers only: numbers are written as numbers and never pass here,
    so ``-3.5`` stays a number while a channel named ``=HYPERLINK(...)`` becomes
    ``'=HYPERLINK(...)``.
    """
    return "'" + text if text.startswith(SPREADSHEET_TRIGGERS) else text


__all__ = [
    "MULTILINE_ALLOWED",
    "SPREADSHEET_TRIGGERS",
    "Line",
    "Text",
    "check_text",
    "json_depth",
    "spreadsheet_safe",
    "unsafe_character",
]
