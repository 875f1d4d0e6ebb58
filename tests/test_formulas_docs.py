"""Every ```formula block of docs/formulas.md is checked against its stated result."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stream0d_nb.formulas import FormulaError, compile_formula
from stream0d_nb.formulas.unitrules import unit_of

DOC = Path(__file__).resolve().parents[1] / "docs" / "formulas.md"
BLOCK = re.compile(r"```formula\n(.*?)\n=> (.*?)\n```", re.S)
MINUTE = 60 * 10**9
START = int(pd.Timestamp("2024-01-01T00:00Z").value)
CHANNELS = {"P": "kW", "T": "degC", "Flow Rate": "m**3/h", "valve": "1"}
VALUES = {
    "P": [1, 2, np.nan, 4, 5, 6],
    "T": [20, 21, 22, np.nan, 24, 25],
    "Flow Rate": [10] * 6,
    "valve": [0, 1, 1, 0, np.nan, 1],
}


def examples() -> list[tuple[str, str]]:
    """(formula, expected) pairs in document order."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text())]


def data(margin: int = 1440) -> dict[str, xr.DataArray]:
    """The doc's dataset, with a day of NaN around it for margins."""
    times = (START + np.arange(-margin, 6 + margin) * MINUTE).astype("datetime64[ns]")
    out = {}
    for name, vals in VALUES.items():
        v = np.full(6 + 2 * margin, np.nan)
        v[margin : margin + 6] = vals
        out[name] = xr.DataArray(v, dims=("time",), coords={"time": times})
    return out


def test_doc_has_examples() -> None:
    assert len(examples()) >= 70
    assert DOC.read_text().count("```formula") == len(examples())


@pytest.mark.parametrize(("formula", "expected"), examples())
def test_doc_example(formula: str, expected: str) -> None:
    if expected.startswith("error: "):
        with pytest.raises(FormulaError) as info:
            compile_formula(formula, CHANNELS, MINUTE, tz="Europe/Madrid")
        assert expected.removeprefix("error: ") in str(info.value)
        return
    m = re.fullmatch(r"\[(.*)\] (\S+)", expected)
    assert m, expected
    want = np.array([float(v) for v in m.group(1).split(",")])
    c = compile_formula(formula, CHANNELS, MINUTE, tz="Europe/Madrid")
    got = c.evaluate(data(), START, START + 6 * MINUTE)
    assert c.units == m.group(2) or unit_of(c.units) == unit_of(m.group(2))
    assert got.attrs == {"units": c.units, "formula": formula}
    np.testing.assert_allclose(got.values, want, rtol=1e-5, atol=1e-9)


def test_every_function_has_an_example() -> None:
    from stream0d_nb.formulas import FUNCTION_NAMES

    code = "\n".join(f for f, _ in examples())
    missing = [n for n in FUNCTION_NAMES if not re.search(rf"\b{n}\(", code)]
    assert not missing, f"functions without a doc example: {missing}"
