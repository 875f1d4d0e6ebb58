"""From syntax nodes to ops: names resolved, units and grids checked, constants folded."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from stream0d_nb.errors import ValidationError
from stream0d_nb.formulas import checks
from stream0d_nb.formulas.checks import Site
from stream0d_nb.formulas.errors import FormulaError
from stream0d_nb.formulas.functions import FUNCTIONS, NAMES, Binder
from stream0d_nb.formulas.limits import Limits
from stream0d_nb.formulas.nodes import Binary, Call, Node, Number, Ref, Text, Unary
from stream0d_nb.formulas.ops import Channel, Const, Op
from stream0d_nb.formulas.unitrules import ONE, Unit, unit_of

COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


def suggest(name: str, names: list[str] | tuple[str, ...]) -> str:
    """``; did you mean 'x'?`` for the closest names (difflib), or nothing."""
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.5)
    if not close:
        lower = {n.lower(): n for n in names}
        close = [lower[n] for n in difflib.get_close_matches(name.lower(), list(lower), n=3)]
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class Compiler:
    """Compiles one formula against channel units and the dataset interval."""

    def __init__(
        self, text: str, channels: Mapping[str, str], base_ns: int, limits: Limits
    ) -> None:
        self.text = text
        self.channels = channels
        self.base_ns = base_ns
        self.limits = limits
        self.refs: set[str] = set()

    def compile(self, node: Node) -> Op:
        """The op for a node (recursion bounded by the parser's depth limit)."""
        site = Site(self.text, node.pos)
        if isinstance(node, Number):
            if node.unit is None:
                return Const(ONE, None, value=node.value, bare=True)
            try:
                unit = unit_of(node.unit)
            except ValidationError:
                raise site.fail(f"unknown units {node.unit!r}") from None
            return Const(unit, None, value=node.value)
        if isinstance(node, Ref):
            return self.ref(node, site)
        if isinstance(node, Text):
            raise site.fail("a string is only allowed as a function argument")
        if isinstance(node, Unary):
            x = self.compile(node.operand)
            if node.op == "not":
                x = checks.condition(x, site, "not")
                return checks.make_map("not", [x], ONE, site, boolean=True)
            if node.op == "+":
                return x
            return checks.make_map("neg", [x], x.units, site)
        if isinstance(node, Binary):
            return self.binary(node, site)
        if isinstance(node, Call):
            return self.call(node, site)
        raise site.fail(f"unsupported construct {type(node).__name__}")  # pragma: no cover

    def ref(self, node: Ref, site: Site) -> Op:
        if node.name not in self.channels:
            if node.name in FUNCTIONS:
                raise site.fail(f"{node.name} is a function: write {node.name}(...)")
            raise site.fail(
                f"unknown channel {node.name!r}{suggest(node.name, list(self.channels))}"
            )
        self.refs.add(node.name)
        try:
            units: Unit = unit_of(self.channels[node.name] or "1")
        except ValidationError:
            raise site.fail(
                f"channel {node.name!r} has unknown units {self.channels[node.name]!r}"
            ) from None
        return Channel(units, self.base_ns, name=node.name)

    def binary(self, node: Binary, site: Site) -> Op:
        a, b, op = self.compile(node.left), self.compile(node.right), node.op
        if op in ("and", "or"):
            a, b = checks.condition(a, site, op), checks.condition(b, site, op)
            return checks.make_map(op, [a, b], ONE, site, boolean=True)
        if op in COMPARISONS:
            ops, _ = checks.common([a, b], site, f"comparison {op}")
            return checks.make_map(op, ops, ONE, site, boolean=True)
        if op in ("+", "-"):
            return checks.additive(op, a, b, site)
        if op in ("*", "/"):
            return checks.multiplicative(op, a, b, site)
        if op == "%":
            checks.no_offset(a, site, "modulo")
            ops, units = checks.common([a, b], site, "modulo")
            return checks.make_map("%", ops, units, site)
        if op == "**":
            return checks.power(a, b, site)
        raise site.fail(f"unknown operator {op!r}")  # pragma: no cover

    def call(self, node: Call, site: Site) -> Op:
        if node.name not in FUNCTIONS:
            hint = suggest(node.name, NAMES)
            if node.name in self.channels:
                hint = f"; {node.name!r} is a channel, not a function"
            raise site.fail(f"unknown function {node.name!r}{hint}")
        params, build = FUNCTIONS[node.name]
        binder = Binder(node, self.text, params, self.compile, self.base_ns, self.limits)
        op = build(binder.bind())
        if op.grid is not None and op.grid % self.base_ns:
            raise site.fail("internal: grid is not a multiple of the interval")  # pragma: no cover
        return op


def compile_ops(
    tree: Node, text: str, channels: Mapping[str, str], base_ns: int, limits: Limits
) -> tuple[Op, frozenset[str]]:
    """The root op of a parsed formula and the channels it references."""
    comp = Compiler(text, channels, base_ns, limits)
    try:
        op = comp.compile(tree)
    except RecursionError:  # pragma: no cover (the depth limit comes first)
        raise FormulaError("formula nested too deeply") from None
    return op, frozenset(comp.refs)
