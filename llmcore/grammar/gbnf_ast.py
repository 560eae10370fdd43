"""The parsed form of a GBNF grammar (what ``llmcore.grammar.gbnf`` produces)."""

from __future__ import annotations

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
