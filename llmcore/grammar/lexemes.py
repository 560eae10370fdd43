"""Which character-only parts of a GBNF grammar may become llguidance lexemes without changing what
the grammar accepts.

llguidance lexes greedily: once a lexeme has matched, it keeps extending it while the next byte
allows. GBNF has no lexer, so a lexeme is only safe when its language is *prefix-free*: no complete
match can be extended into a longer match (a JSON string ``"..."`` is; ``[0-9]+`` or a string
followed by optional whitespace is not). :func:`extensions` computes, for a character-only node, an
over-approximation of the characters that can extend a complete match; an empty result means the
node is prefix-free. Everything else is translated character by character, which is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmcore.grammar.gbnf_ast import CharClass, Choice, Literal, Node, Repeat, RuleRef, Sequence

MAX_CODE_POINT = 0x10FFFF
Ranges = tuple[tuple[int, int], ...]  # sorted, disjoint, inclusive code point ranges
EMPTY: Ranges = ()
ALL: Ranges = ((0, MAX_CODE_POINT),)


def union(a: Ranges, b: Ranges) -> Ranges:
    merged: list[list[int]] = []
    for low, high in sorted(a + b):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple((low, high) for low, high in merged)


def intersects(a: Ranges, b: Ranges) -> bool:
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return True
    return False


def char_class_ranges(node: CharClass) -> Ranges:
    """The code points a character class (``.`` included) matches."""
    ranges = union(node.ranges, EMPTY)
    if not node.negated:
        return ranges
    complement, start = [], 0
    for low, high in ranges:
        if low > start:
            complement.append((start, low - 1))
        start = high + 1
    if start <= MAX_CODE_POINT:
        complement.append((start, MAX_CODE_POINT))
    return tuple(complement)


@dataclass(frozen=True)
class Shape:
    """What the greedy-lexing check needs to know about a character-only node."""

    nullable: bool
    first: Ranges  # characters a non-empty match can start with
    extensions: Ranges  # characters that can extend a complete match (over-approximated)


def shape(node: Node, rule_body: Callable[[str], Node]) -> Shape:
    """The :class:`Shape` of a character-only node; ``rule_body`` gives a referenced rule's body."""
    if isinstance(node, Literal):
        first = ((ord(node.text[0]), ord(node.text[0])),) if node.text else EMPTY
        return Shape(not node.text, first, EMPTY)
    if isinstance(node, CharClass):
        return Shape(False, char_class_ranges(node), EMPTY)
    if isinstance(node, RuleRef):
        return shape(rule_body(node.name), rule_body)
    if isinstance(node, Sequence):
        result = Shape(True, EMPTY, EMPTY)
        for item in node.items:
            result = _concat(result, shape(item, rule_body))
        return result
    if isinstance(node, Choice):
        return _alternatives([shape(alt, rule_body) for alt in node.alternatives], node)
    if isinstance(node, Repeat):
        return _repeat(shape(node.node, rule_body), node)
    raise AssertionError(f"not a character-only node: {node!r}")


def _concat(a: Shape, b: Shape) -> Shape:
    first = union(a.first, b.first) if a.nullable else a.first
    if intersects(a.extensions, b.first):
        return Shape(a.nullable and b.nullable, first, ALL)  # where a ends is ambiguous
    extensions = b.extensions
    if b.nullable:
        extensions = union(extensions, union(a.extensions, b.first))
    return Shape(a.nullable and b.nullable, first, extensions)


def _alternatives(shapes: list[Shape], node: Choice) -> Shape:
    first, extensions, nullable = EMPTY, EMPTY, False
    literals = all(len(seq.items) == 1 and isinstance(seq.items[0], Literal)
                   for seq in node.alternatives)
    for item in shapes:
        if intersects(first, item.first) and not literals:
            extensions = ALL  # two alternatives start alike: one may be a prefix of another
        first = union(first, item.first)
        extensions = union(extensions, item.extensions)
        nullable = nullable or item.nullable
    if literals:  # exact for a choice of plain strings: "ab" | "abc" extends by "c"
        texts = [seq.items[0].text for seq in node.alternatives]
        for short in texts:
            for long in texts:
                if len(long) > len(short) and long.startswith(short):
                    extensions = union(extensions, ((ord(long[len(short)]),) * 2,))
    if nullable:
        extensions = union(extensions, first)
    return Shape(nullable, first, extensions)


def _repeat(item: Shape, node: Repeat) -> Shape:
    if item.nullable or intersects(item.extensions, item.first):
        return Shape(True, item.first, ALL)
    extensions = item.extensions
    if node.max is None or node.max > node.min:
        extensions = union(extensions, item.first)
    return Shape(node.min == 0, item.first, extensions)
