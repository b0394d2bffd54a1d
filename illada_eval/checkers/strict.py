"""Strict ``==`` / ``!=`` for benchmark tests: only plain built-in values can satisfy them.

A wrong solution can return an object whose ``__eq__`` always answers True (or an ``int``
subclass that does) and so pass ``assert candidate(2, 3) == 6``. ``tests_code`` compiles test
source with every comparison that uses ``==`` or ``!=`` rewritten into a call of ``compare``,
which requires both operands, in full (items of containers, keys and values of dicts), to be
of exact built-in value types before Python compares them. Between such values Python's own
equality is honest: numbers equal numbers by value, a set may equal a frozenset, and every
other pair of different kinds is unequal. Any other operand raises ``TypeError``, so neither
``==`` nor ``!=`` (nor ``not ==``) can be satisfied by it.

Standard library only: the sandbox loads this file by path into the process that runs the tests.
"""
from __future__ import annotations

import ast
import operator
from types import CodeType

COMPARE = "__strict_compare__"  # the name rewritten tests call; bind it to ``compare``

_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray})
_CONTAINERS = frozenset({list, tuple, set, frozenset, dict})
_SYMBOLS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
            ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}
_OPERATORS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
              ">": operator.gt, ">=": operator.ge, "is": operator.is_, "is not": operator.is_not,
              "in": lambda a, b: a in b, "not in": lambda a, b: a not in b}


def require_plain(value: object) -> None:
    """Raise TypeError unless ``value`` is made only of exact built-in value types.

    ``type()`` is used, not ``isinstance`` or ``__class__``, which an object can fake."""
    pending, seen = [value], set()
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind not in _CONTAINERS:
            raise TypeError(f"the tests compared a {kind.__module__}.{kind.__qualname__} object: "
                            "only plain built-in values (numbers, strings, bytes, None, and lists, "
                            "tuples, sets and dicts of them) can be compared")
        if id(item) in seen:  # a container that holds itself
            continue
        seen.add(id(item))
        if kind is dict:
            pending.extend(item.keys())
            pending.extend(item.values())
        else:
            pending.extend(item)


def compare(left: object, *links: object) -> bool:
    """``left op1 right1 op2 right2 ...`` as Python chains it (each right side a thunk, called
    only when the chain gets that far), with ``==`` and ``!=`` made strict."""
    for index in range(0, len(links), 2):
        symbol, right = links[index], links[index + 1]()
        if symbol in ("==", "!="):
            require_plain(left)
            require_plain(right)
        if not _OPERATORS[symbol](left, right):
            return False
        left = right
    return True


class _StrictComparisons(ast.NodeTransformer):
    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if not any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            return node
        no_arguments = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])
        args = [node.left]
        for op, right in zip(node.ops, node.comparators):
            args += [ast.Constant(_SYMBOLS[type(op)]), ast.Lambda(no_arguments, right)]
        return ast.copy_location(ast.Call(ast.Name(COMPARE, ast.Load()), args, []), node)


def tests_code(source: str, filename: str = "<tests>") -> CodeType:
    """``source`` compiled with its ``==`` / ``!=`` comparisons made strict (needs ``COMPARE``
    bound to ``compare`` in the globals it runs in)."""
    tree = _StrictComparisons().visit(ast.parse(source, filename))
    return compile(ast.fix_missing_locations(tree), filename, "exec")
