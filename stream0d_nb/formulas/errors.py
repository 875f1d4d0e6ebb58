"""Formula errors: both are ValidationErrors, and render the formula with a caret."""

from __future__ import annotations

from stream0d_nb.errors import ValidationError


def caret(text: str, line: int | None, column: int | None) -> str:
    """The formula line at ``line`` (1-based) with a caret under ``column`` (1-based)."""
    if line is None or column is None:
        return ""
    lines = text.splitlines() or [""]
    src = lines[min(line, len(lines)) - 1]
    if len(src) > 200:  # keep the message short for huge formulas
        lo = max(0, column - 100)
        src, column = src[lo : lo + 200], column - lo
    return f"\n  {src}\n  {' ' * (column - 1)}^"


class FormulaError(ValidationError):
    """A formula is not acceptable: unknown name, unit error, limit, or bad evaluation."""

    def __init__(
        self,
        message: str,
        text: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        self.text = text
        self.line = line
        self.column = column
        where = f" (line {line}, column {column})" if text and line and column else ""
        shown = caret(text, line, column) if text else ""
        super().__init__(f"{message}{where}{shown}")


class FormulaSyntaxError(FormulaError):
    """The formula does not follow the grammar; ``expected`` lists what would fit."""

    def __init__(
        self,
        message: str,
        text: str | None = None,
        line: int | None = None,
        column: int | None = None,
        expected: tuple[str, ...] = (),
    ) -> None:
        self.expected = expected
        super().__init__(message, text, line, column)
