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


def normalized(ranges: Ranges) -> Ranges:
    """``ranges`` (in any order, possibly overlapping) as sorted, disjoint ranges."""
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple((low, high) for low, high in merged)


def union(a: Ranges, b: Ranges) -> Ranges:
    if not a or not b:
        return a or b
    return normalized(a + b)


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
    ranges = normalized(node.ranges)
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


NOTHING = Shape(True, EMPTY, EMPTY)  # the empty sequence


def shape(node: Node, rule_shape: Callable[[str], Shape]) -> Shape:
    """The :class:`Shape` of a character-only node; ``rule_shape`` gives a referenced rule's shape
    (computed once per rule, so a reference costs nothing and a chain of rules recurses no deeper)."""
    if isinstance(node, Literal):
        first = ((ord(node.text[0]), ord(node.text[0])),) if node.text else EMPTY
        return Shape(not node.text, first, EMPTY)
    if isinstance(node, CharClass):
        return Shape(False, char_class_ranges(node), EMPTY)
    if isinstance(node, RuleRef):
        return rule_shape(node.name)
    if isinstance(node, Sequence):
        result = NOTHING
        for item in node.items:
            result = concat(result, shape(item, rule_shape))
        return result
    if isinstance(node, Choice):
        return _alternatives([shape(alt, rule_shape) for alt in node.alternatives], node)
    if isinstance(node, Repeat):
        return _repeat(shape(node.node, rule_shape), node)
    raise AssertionError(f"not a character-only node: {node!r}")


def concat(a: Shape, b: Shape) -> Shape:
    """The shape of ``a`` followed by ``b``."""
    first = union(a.first, b.first) if a.nullable else a.first
    if intersects(a.extensions, b.first):
        return Shape(a.nullable and b.nullable, first, ALL)  # where a ends is ambiguous
    extensions = b.extensions
    if b.nullable:
        extensions = union(extensions, union(a.extensions, b.first))
    return Shape(a.nullable and b.nullable, first, extensions)


def _alternatives(shapes: list[Shape], node: Choice) -> Shape:
    # Each alternative's first set is disjoint ranges, so two alternatives start alike exactly when
    # ranges overlap once all are sorted together: one sort, not a comparison per pair.
    starts = sorted(r for item in shapes for r in item.first)
    overlap, reach = False, -1
    for low, high in starts:
        overlap = overlap or low <= reach
        reach = max(reach, high)
    first = normalized(tuple(starts))
    nullable = any(item.nullable for item in shapes)
    extension_ranges = [r for item in shapes for r in item.extensions]
    literals = all(len(seq.items) == 1 and isinstance(seq.items[0], Literal) for seq in node.alternatives)
    if literals:  # exact for a choice of plain strings: "ab" | "abc" extends by "c"
        extension_ranges += ((ord(c), ord(c)) for c in _literal_extensions([seq.items[0].text
                                                                            for seq in node.alternatives]))
    elif overlap:
        return Shape(nullable, first, ALL)  # two alternatives start alike: one may be a prefix of another
    extensions = normalized(tuple(extension_ranges) + (first if nullable else EMPTY))
    return Shape(nullable, first, extensions)


def _literal_extensions(texts: list[str]) -> set[str]:
    """The characters that extend one of ``texts`` into a longer one. In sorted order the strings
    that start with ``short`` follow it directly, so each scan stops at the first that does not."""
    texts = sorted(set(texts))
    found: set[str] = set()
    for i, short in enumerate(texts):
        following = i + 1
        while following < len(texts) and texts[following].startswith(short):
            found.add(texts[following][len(short)])
            following += 1
    return found


def _repeat(item: Shape, node: Repeat) -> Shape:
    if item.nullable or intersects(item.extensions, item.first):
        return Shape(True, item.first, ALL)
    extensions = item.extensions
    if node.max is None or node.max > node.min:
        extensions = union(extensions, item.first)
    return Shape(node.min == 0, item.first, extensions)
