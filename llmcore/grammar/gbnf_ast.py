"""The parsed form of a GBNF grammar (what ``llmcore.grammar.gbnf`` produces)."""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Literal:
    text: str


@dataclass(frozen=True)
class CharClass:
    ranges: tuple[tuple[int, int], ...]  # inclusive code point ranges; empty + negated is ``.``
    negated: bool


@dataclass(frozen=True)
class RuleRef:
    name: str
    offset: int


@dataclass(frozen=True)
class TokenRef:
    token: int | str  # an id from ``<[id]>`` or the text of ``<text>``
    negated: bool
    offset: int


@dataclass(frozen=True)
class Sequence:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Choice:
    alternatives: tuple[Sequence, ...]


@dataclass(frozen=True)
class Repeat:
    node: Node
    min: int
    max: int | None


Node = Literal | CharClass | RuleRef | TokenRef | Sequence | Choice | Repeat


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Sequence):
        return node.items
    if isinstance(node, Choice):
        return node.alternatives
    if isinstance(node, Repeat):
        return (node.node,)
    return ()


def nesting_depth(node: Node, rule_depth: Callable[[str], int] = lambda name: 0) -> int:
    """How deeply groups and repetitions nest in ``node`` (a rule body counts 1), a reference
    adding ``rule_depth`` of its rule; without recursion."""
    deepest = 0
    stack = [(node, 0)]
    while stack:
        current, depth = stack.pop()
        depth += isinstance(current, (Choice, Repeat))
        if isinstance(current, RuleRef):
            depth += rule_depth(current.name)
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children(current))
    return deepest


def inlined_size(node: Node, rule_size: Callable[[str], int]) -> int:
    """The number of nodes in ``node`` with every reference replaced by its rule (of ``rule_size``
    nodes): what a regular expression made of it holds. Without recursion."""
    size = 0
    stack = [node]
    while stack:
        current = stack.pop()
        size += rule_size(current.name) if isinstance(current, RuleRef) else 1
        stack.extend(children(current))
    return size


#: what a node needs to hold (see :func:`rules_that_hold`): a fixed answer, or all / any of its children
Need = bool | typing.Literal["all", "any"]


def rules_that_hold(rules: Mapping[str, Choice], need: Callable[[Node], Need]) -> list[str]:
    """The rules whose bodies hold, as a least fixpoint: a :class:`RuleRef` holds once its rule
    does, every other node as ``need`` says. Listed in the order found, so each rule comes after
    every rule it depends on. A worklist over the and/or graph of all bodies settles each node
    once: linear in the grammar's size, with no recursion (a chain of 20,000 rules is fine)."""
    parents: list[int] = []  # node index -> its parent's index, -1 for a rule's body
    missing: list[int] = []  # node index -> children still to hold (1 for "any")
    body_of: dict[int, str] = {}  # a body's node index -> its rule
    refs_to: dict[str, list[int]] = {name: [] for name in rules}
    ready: list[int] = []
    for name, body in rules.items():
        stack = [(body, -1)]
        while stack:
            node, parent = stack.pop()
            index = len(parents)
            parents.append(parent)
            if parent == -1:
                body_of[index] = name
            if isinstance(node, RuleRef):
                missing.append(1)
                refs_to[node.name].append(index)
                continue
            verdict = need(node)
            kids = children(node) if verdict in ("all", "any") else ()
            missing.append(len(kids) if verdict == "all" else 1 if verdict == "any" else int(not verdict))
            if verdict is True or (verdict == "all" and not kids):
                ready.append(index)
            stack.extend((kid, index) for kid in kids)
    held: list[str] = []
    while ready:
        index = ready.pop()
        parent = parents[index]
        if parent == -1:
            name = body_of[index]
            held.append(name)
            ready.extend(refs_to[name])
            continue
        missing[parent] -= 1
        if missing[parent] == 0:
            ready.append(parent)
    return held
