"""The formula language for derived channels (issue #3); see docs/formulas.md.

``compile_formula(text, channels, interval_ns, tz)`` parses with a lark grammar, checks
names, units and limits, and returns a ``Compiled`` formula whose ``evaluate`` computes
the result over any time range given inputs with ``margin_ns`` of extra data.
"""

from stream0d_nb.formulas import accessor as _accessor  # registers ds.s0d
from stream0d_nb.formulas.errors import FormulaError, FormulaSyntaxError
from stream0d_nb.formulas.evaluate import Compiled, compile_formula
from stream0d_nb.formulas.functions import NAMES as FUNCTION_NAMES
from stream0d_nb.formulas.limits import Limits

__all__ = [
    "FUNCTION_NAMES",
    "Compiled",
    "FormulaError",
    "FormulaSyntaxError",
    "Limits",
    "compile_formula",
]
del _accessor
