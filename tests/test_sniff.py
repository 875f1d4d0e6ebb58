"""Layout detection on small made-up heads of text files."""

from __future__ import annotations

import pytest

from stream0d_nb.errors import IngestError
from stream0d_nb.ingest import sniff, timeparse


def layout(text: str | bytes, **kw: object) -> sniff.TextLayout:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return sniff.sniff_text(data, complete=True, is_time_text=timeparse.is_time_text, **kw)  # type: ignore[arg-type]


def test_plain_comma_file() -> None:
    lay = layout("time,a,b\n2024-01-01 00:00,1.5,2\n2024-01-01 00:01,1.6,3\n")
    assert (lay.delimiter, lay.decimal, lay.encoding, lay.bom) == (",", ".", "utf-8", 0)
    assert lay.header_line == 1 and lay.first_data_line == 2
    assert lay.headers == ["time", "a", "b"] and lay.units_cells is None
    assert lay.sample == [["2024-01-01 00:00", "1.5", "2"], ["2024-01-01 00:01", "1.6", "3"]]


def test_semicolon_decimal_comma_crlf() -> None:
    lay = layout(
        "Zeit;Temp;Druck\r\n01.02.2024 10:00;21,5;1,013\r\n01.02.2024 10:01;21,6;1,012\r\n"
    )
    assert (lay.delimiter, lay.decimal) == (";", ",")
    assert lay.headers == ["Zeit", "Temp", "Druck"]
    assert lay.sample[0] == ["01.02.2024 10:00", "21,5", "1,013"]


def test_tab_and_pipe() -> None:
    assert layout("t\ta\tb\n2024-01-01\t1\t2\n").delimiter == "\t"
    assert layout("t|a|b\n2024-01-01|1|2\n2024-01-02|3|4\n").delimiter == "|"


def test_metadata_lines_before_header() -> None:
    text = (
        "Export from SCADA v2\n"
        "Plant: Valencia\n"
        "\n"
        "time;a;b\n"
        "2024-01-01 00:00;1;2\n"
        "2024-01-01 00:01;3;4\n"
    )
    lay = layout(text)
    assert lay.delimiter == ";"
    assert lay.header_line == 4 and lay.first_data_line == 5
    assert layout(text, skip_rows=3).header_line == 4


def test_units_row_detected_and_forced() -> None:
    text = "time,T,P\n,degC,bar\n2024-01-01 00:00,1,2\n"
    lay = layout(text)
    assert lay.units_cells == ["", "degC", "bar"] and lay.first_data_line == 3
    assert sniff.units_from_cells(lay.units_cells) == [None, "degC", "bar"]
    assert layout(text, units_row=False).units_cells is None
    # A second header row of numbers is data, not units.
    assert layout("time,T\n2024-01-01,1\n").units_cells is None


def test_quoted_fields_keep_delimiters() -> None:
    lay = layout('time,"a, left",b\n2024-01-01,"1.5",2\n2024-01-02,"1.6",3\n')
    assert lay.delimiter == "," and lay.headers == ["time", "a, left", "b"]


def test_encodings() -> None:
    assert sniff.detect_encoding("x°C".encode("cp1252"), None) == ("cp1252", 0)
    assert sniff.detect_encoding(b"\xef\xbb\xbftime,a\n", None) == ("utf-8", 3)
    assert sniff.detect_encoding("x°C".encode(), None) == ("utf-8", 0)
    assert sniff.detect_encoding(b"abc", "latin-1") == ("latin-1", 0)
    with pytest.raises(IngestError, match="unknown encoding"):
        sniff.detect_encoding(b"abc", "no-such-codec")
    lay = layout("time;T [°C]\n2024-01-01;1\n".encode("cp1252"))
    assert lay.encoding == "cp1252" and lay.headers == ["time", "T [°C]"]


def test_split_units() -> None:
    assert sniff.split_units("Temp [degC]") == ("Temp", "degC")
    assert sniff.split_units("Temp (degC)") == ("Temp", "degC")
    assert sniff.split_units("Temp / bar") == ("Temp", "bar")
    assert sniff.split_units("Volume Flow RateRMS") == ("Volume Flow RateRMS", None)
    assert sniff.split_units("a/b") == ("a/b", None)


def test_numbers() -> None:
    assert sniff.is_number("1.5") and sniff.is_number("-2e3") and sniff.is_number("NaN")
    assert sniff.is_number("1,5", ",") and not sniff.is_number("1,5", ".")
    assert not sniff.is_number("degC")


def test_empty_file_is_an_error() -> None:
    with pytest.raises(IngestError, match="empty"):
        layout("\n\n")
