"""The formula grammar (lark, LALR) and the parser from text to syntax nodes.

Everything that is not in ``GRAMMAR`` is a syntax error: there is no attribute access,
subscript, lambda, keyword other than ``and or not``, or string outside call arguments.
Limits on length, depth and node count are checked before any recursion.
"""

from __future__ import annotations

from functools import lru_cache

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from stream0d_nb.formulas.errors import FormulaError, FormulaSyntaxError
from stream0d_nb.formulas.limits import Limits
from stream0d_nb.formulas.nodes import Binary, Call, Node, Number, Pos, Ref, Text, Unary

GRAMMAR = r"""
?start: expr

?expr: expr OR and_expr            -> binop
     | and_expr
?and_expr: and_expr AND not_expr   -> binop
     | not_expr
?not_expr: NOT not_expr            -> unary
     | comparison
?comparison: sum COMPARE sum       -> binop
     | sum
?sum: sum ADDOP term               -> binop
    | term
?term: term MULOP factor           -> binop
     | factor
?factor: ADDOP factor              -> unary
     | power
?power: atom POW factor            -> binop
     | atom
?atom: NUMBER                      -> number
     | NUMBER NAME                 -> quantity
     | NUMBER UNIT                 -> quantity
     | CHANNEL                     -> channel
     | NAME                        -> name
     | NAME LPAR [arglist] RPAR    -> call
     | LPAR expr RPAR              -> paren
arglist: arg (COMMA arg)*
arg: expr
   | STRING
   | NAME EQUALS expr
   | NAME EQUALS STRING

OR: "or"
AND: "and"
NOT: "not"
COMPARE: /<=|>=|==|!=|<|>/
ADDOP: /[+-]/
MULOP: /\*(?!\*)|\/|%/
POW: "**"
EQUALS: /=(?!=)/
LPAR: "("
RPAR: ")"
COMMA: ","
NUMBER: /(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/
NAME: /[A-Za-z][A-Za-z0-9_]*/
CHANNEL: /\{[^{}\r\n]*\}/
UNIT: /\[[^\[\]\r\n]*\]/
STRING: /"[^"\r\n]*"|'[^'\r\n]*'/
COMMENT: /#[^\r\n]*/
WS: /[ \t\r\n]+/
%ignore WS
%ignore COMMENT
"""

FRIENDLY = {
    "OR": "'or'",
    "AND": "'and'",
    "NOT": "'not'",
    "COMPARE": "a comparison (< <= > >= == !=)",
    "ADDOP": "'+' or '-'",
    "MULOP": "'*', '/' or '%'",
    "POW": "'**'",
    "EQUALS": "'='",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "NUMBER": "a number",
    "NAME": "a name",
    "CHANNEL": "a {channel}",
    "UNIT": "[units]",
    "STRING": 'a "string"',
    "$END": "end of formula",
}


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The LALR parser (built once; lark's contextual lexer, positions kept)."""
    return Lark(GRAMMAR, parser="lalr", lexer="contextual", propagate_positions=True)


def _syntax_error(text: str, exc: UnexpectedInput) -> FormulaSyntaxError:
    expected: set[str] = set()
    if isinstance(exc, UnexpectedToken | UnexpectedEOF):
        expected = set(exc.expected)
    elif isinstance(exc, UnexpectedCharacters):
        expected = set(exc.allowed or ())
    names = tuple(sorted(FRIENDLY.get(e, e) for e in expected))
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        what = f"unexpected character {text[exc.pos_in_stream or 0]!r}"
    elif isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        what = f"unexpected {str(exc.token)[:40]!r}"
    else:
        what = "unexpected end of formula"
        lines = text.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    if line is None or line < 1:
        line, column = 1, 1
    hint = f"; expected {', '.join(names)}" if names else ""
    return FormulaSyntaxError(f"syntax error: {what}{hint}", text, line, column, names)


def _check_shape(tree: Tree[Token], text: str, limits: Limits) -> None:
    """Depth and node count, iteratively (no recursion on untrusted nesting)."""
    stack: list[tuple[Tree[Token] | Token, int]] = [(tree, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > limits.max_depth:
            line, col = _pos_of(node)
            raise FormulaError(
                f"formula nested too deeply (more than {limits.max_depth} levels)", text, line, col
            )
        if count > limits.max_nodes:
            raise FormulaError(f"formula too large (more than {limits.max_nodes} nodes)")
        if isinstance(node, Tree):
            stack.extend((c, depth + 1) for c in node.children if c is not None)


def _pos_of(node: Tree[Token] | Token) -> tuple[int | None, int | None]:
    if isinstance(node, Token):
        return node.line, node.column
    meta = node.meta
    return (meta.line, meta.column) if not meta.empty else (None, None)


def parse(text: str, limits: Limits) -> Node:
    """Parse formula text into syntax nodes; FormulaSyntaxError/FormulaError on refusal."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula is text, not {type(text).__name__}")
    if len(text) > limits.max_length:
        raise FormulaError(f"formula too long ({len(text)} characters; limit {limits.max_length})")
    if not text.strip() or not text.strip("# \t\r\n"):
        raise FormulaSyntaxError("empty formula", text, 1, 1, ("an expression",))
    try:
        tree = parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    if isinstance(tree, Token):  # a single token, e.g. `x`
        tree = Tree("start", [tree])
    _check_shape(tree, text, limits)
    return _Builder(text, limits).build(tree)


class _Builder:
    """Turns lark trees into syntax nodes (recursion bounded by the depth check)."""

    def __init__(self, text: str, limits: Limits) -> None:
        self.text = text
        self.limits = limits

    def fail(self, message: str, tok: Token | Tree[Token]) -> FormulaError:
        line, col = _pos_of(tok)
        return FormulaError(message, self.text, line, col)

    def pos(self, node: Tree[Token] | Token) -> Pos:
        line, col = _pos_of(node)
        return Pos(line or 1, col or 1)

    def name(self, tok: Token, strip: int = 0) -> str:
        value = str(tok)[strip : len(tok) - strip]
        if len(value) > self.limits.max_name_length:
            raise self.fail(f"name too long ({len(value)} characters)", tok)
        return value

    def build(self, t: Tree[Token] | Token) -> Node:
        if isinstance(t, Token):
            return self.token(t)
        kind, ch = t.data, t.children
        if kind == "start":
            return self.build(ch[0])
        if kind == "paren":
            return self.build(ch[1])
        if kind == "binop":
            a, op, b = ch
            return Binary(str(op), self.build(a), self.build(b), self.pos(op))
        if kind == "unary":
            op, a = ch
            return Unary(str(op), self.build(a), self.pos(op))
        if kind == "quantity":
            num, unit = ch
            assert isinstance(num, Token) and isinstance(unit, Token)
            text = self.name(unit, 1 if unit.type == "UNIT" else 0)
            return Number(self.number(num), text.strip(), self.pos(num))
        if kind == "call":
            return self.call(t)
        if kind in ("number", "channel", "name"):
            return self.build(ch[0])
        raise self.fail(f"unsupported construct {kind!r}", t)  # pragma: no cover

    def token(self, tok: Token) -> Node:
        if tok.type == "NUMBER":
            return Number(self.number(tok), None, self.pos(tok))
        if tok.type == "CHANNEL":
            return Ref(self.name(tok, 1), self.pos(tok))
        if tok.type == "NAME":
            return Ref(self.name(tok), self.pos(tok))
        raise self.fail(f"unexpected {str(tok)!r}", tok)  # pragma: no cover

    def number(self, tok: Token) -> float:
        value = float(str(tok))
        if value != value or value in (float("inf"), float("-inf")):
            raise self.fail(f"number {str(tok)[:30]!r} is too large", tok)
        return value

    def call(self, t: Tree[Token]) -> Call:
        name_tok, _lpar, arglist, _rpar = t.children
        assert isinstance(name_tok, Token)
        args: list[Node] = []
        kwargs: list[tuple[str, Node, Pos]] = []
        if isinstance(arglist, Tree):
            for arg in arglist.children:
                if not isinstance(arg, Tree):  # commas
                    continue
                parts = arg.children
                if len(parts) == 3:
                    key = parts[0]
                    assert isinstance(key, Token)
                    if any(k == str(key) for k, _, _ in kwargs):
                        raise self.fail(f"argument {str(key)!r} given twice", key)
                    kwargs.append((str(key), self.arg(parts[2]), self.pos(key)))
                else:
                    if kwargs:
                        raise self.fail("positional argument after a keyword argument", arg)
                    args.append(self.arg(parts[0]))
        return Call(str(name_tok), tuple(args), tuple(kwargs), self.pos(name_tok))

    def arg(self, a: Tree[Token] | Token) -> Node:
        if isinstance(a, Token) and a.type == "STRING":
            return Text(self.name(a, 1), self.pos(a))
        return self.build(a)
