"""Attack strings: every one is refused with FormulaError/FormulaSyntaxError, quickly."""

from __future__ import annotations

import time

import numpy as np
import pytest
import xarray as xr

from stream0d_nb.errors import ValidationError
from stream0d_nb.formulas import FormulaError, FormulaSyntaxError, Limits, compile_formula

S = 10**9
CHANNELS = {"x": "kW", "T": "degC", "Volume Flow RateRMS": "m**3/h"}

ATTACKS = [
    '__import__("os").system("echo pwned")',
    "__import__",
    "().__class__.__bases__[0].__subclasses__()",
    "x.__class__",
    "{x}.real",
    "x[0]",
    "x[::-1]",
    "lambda: 1",
    "(lambda: 1)()",
    "import os",
    "exec('1')",
    "eval('1')",
    "open('/etc/passwd')",
    "getattr(x, 'y')",
    "globals()",
    "os.system('ls')",
    "x; import os",
    "x\nimport os",
    "[x for x in x]",
    "{1: 2}",
    "'string'",
    '"abc" + x',
    "x if x else x",
    "x := 1",
    "x = 1",
    "f'{x}'",
    "b'x'",
    "x @ x",
    "x // 2",
    "x << 2",
    "~x",
    "x & x",
    "1 < x < 2",
    "10**10**10",
    "9**9**9**9",
    "1e999",
    "1" * 400,
    "1/0",
    "(1 - 1) ** -1",
    "exp(1000)",
    "(" * 100 + "x" + ")" * 100,
    "-" * 1000 + "x",
    "not " * 300 + "x",
    "abs(" * 60 + "x" + ")" * 60,
    "x" + " + x" * 2000,
    "x" * 5000,
    "{" + "a" * 300 + "}",
    "{" + "}" * 50,
    'rolling_mean(x, "401d")',
    'rolling_mean(x, "100000000000000h")',
    'rolling_mean(x, "1e9h")',
    'rolling_mean(x, "-1h")',
    'rolling_mean(x, "0s")',
    'rolling_mean(x, "' + "1" * 200 + 's")',
    'resample(x, "1000d")',
    'shift(x, "-500d")',
    'fill(x, "ffill", limit="999d")',
    'mad(x, "30d")',
    'rolling_mean(x, "' + "1h" * 40 + '")',
    'to(x, "__import__")',
    'to(x, "kW; import os")',
    'to(x, "m" * 10)',
    'to(x, "' + "m*" * 200 + 'm")',
    "x * 2 [__class__]",
    "x * 2 [kW]]",
    "5 __class__",
    "1_000",
    "０",  # fullwidth digit
    "٣ + x",  # Arabic-Indic digit
    "ｘ",  # fullwidth x
    "x\u00a0+ 1",  # no-break space
    "x\u200b+ 1",  # zero-width space
    "x \u2212 1",  # minus sign
    "\u202ex + 1",  # right-to-left override
    "{x\u202e}",  # unknown channel with an override
    "ℌ + 1",
    "x\x00",
    "",
    "   # only a comment",
    "rolling_mean(x, 3600)",
    "rolling_mean(x)",
    "rolling_mean(window='1h')",
    "abs(x, x)",
    "abs(y=x)",
    "hour(x)",
    "nonexistent(x)",
    "x(1)",
    "if(x, x, x)",
    "{T} + {x}",
    "{T} * {T}",
    "{x} ** {x}",
    "exp(x)",
    "resample(x, '1h') + x",
    '"' + "a" * 100000,
    "a" * 100000,
    "((((((((((" * 500,
    "x" + "*" * 5000,
    "x +" + " " * 100000,
    "# " + "a" * 10000 + "\nx",
]


@pytest.mark.parametrize("text", ATTACKS, ids=lambda t: repr(t[:40]))
def test_attack_is_refused_quickly(text: str) -> None:
    t = time.perf_counter()
    with pytest.raises(FormulaError) as info:
        compile_formula(text, CHANNELS, S)
    assert time.perf_counter() - t < 1.0
    assert isinstance(info.value, ValidationError)
    assert len(str(info.value)) < 2000


def test_syntax_errors_are_formula_syntax_errors_with_a_caret() -> None:
    with pytest.raises(FormulaSyntaxError) as info:
        compile_formula("x + * 2", CHANNELS, S)
    msg = str(info.value)
    assert "line 1, column 5" in msg
    assert "\n  x + * 2\n      ^" in msg
    assert "a number" in msg and "a {channel}" in msg
    assert info.value.expected


def test_nothing_is_evaluated_from_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", boom)
    monkeypatch.setattr(builtins, "exec", boom)
    c = compile_formula('rolling_mean({x}, "2s") * 2 + 1 kW', CHANNELS, S)
    da = xr.DataArray(np.arange(5.0), dims=("time",), coords={"time": np.arange(5) * S})
    assert c.evaluate({"x": da}, 0, 5 * S).values.tolist() == [1, 2, 4, 6, 8]


def test_output_size_and_time_limits() -> None:
    c = compile_formula("x * 2", CHANNELS, S, limits=Limits(max_values=1000))
    da = xr.DataArray(np.zeros(10), dims=("time",), coords={"time": np.arange(10) * S})
    with pytest.raises(FormulaError, match="over the limit"):
        c.evaluate({"x": da}, 0, 10_000 * S)
    slow = compile_formula('mad(x, "1000s")', CHANNELS, S, limits=Limits(max_seconds=0.05))
    big = xr.DataArray(
        np.random.default_rng(0).normal(size=400_000),
        dims=("time",),
        coords={"time": np.arange(400_000) * S},
    )
    t = time.perf_counter()
    with pytest.raises(FormulaError, match="longer than"):
        slow.evaluate({"x": big}, 0, 400_000 * S)
    assert time.perf_counter() - t < 5


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(FormulaError, match="did you mean 'Volume Flow RateRMS'"):
        compile_formula("{Volume Flow Rate RMS}", CHANNELS, S)
    with pytest.raises(FormulaError, match="did you mean 'interpolate'"):
        compile_formula("interpolat(x, limit='1s')", CHANNELS, S)
    with pytest.raises(FormulaError, match="unknown argument 'lim'"):
        compile_formula("fill(x, 'ffill', lim='1s')", CHANNELS, S)
