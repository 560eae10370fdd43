"""Translate a parsed GBNF grammar into the Lark dialect llguidance compiles, keeping GBNF's meaning.

* A maximal run of character items (literals, classes, groups of them) whose language is
  prefix-free becomes one lexeme (a regular expression), and so does a reference to a prefix-free
  character-only rule: llguidance matches those fast, and greedy lexing cannot cut them wrongly
  (see ``llmcore.grammar.lexemes``).
* Anything else is translated structurally, down to single characters where needed, which the
  Earley parser then handles exactly (e.g. ``ws ::= [ \\t\\n]*`` before a required ``"\\n"``).
* Tokens become ``<[id]>`` / ``<[^id]>``; ``<text>`` tokens are resolved with the vocabulary.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from llmcore.grammar.errors import GrammarError
from llmcore.grammar.gbnf_ast import (CharClass, Choice, Literal, Need, Node, Repeat, RuleRef, Sequence, TokenRef,
                                      children, inlined_size, nesting_depth,
                                      rules_that_hold)
from llmcore.grammar.lexemes import ALL, NOTHING, Shape, char_class_ranges, concat, shape


# The longest run of items tried as one lexeme: checking a run costs its length, so an unbounded
# run would make a long sequence of character items quadratic. Longer runs are split; the
# translation stays exact (only fewer characters go into one lexeme).
_MAX_LEXEME_ITEMS = 8
# The deepest nesting and the most nodes of one lexeme, through the rules it takes in: the
# engine inlines them into one regular expression and recurses that deep (a chain of thousands of
# character rules would overflow its stack; ``r ::= s s``, ``s ::= t t``, ... doubles at each
# rule). A bigger character rule is translated as a rule instead.
_MAX_LEXEME_DEPTH = 100
_MAX_LEXEME_NODES = 10_000


def _char_only_need(node: Node) -> Need:
    if isinstance(node, (Literal, CharClass)):
        return True
    return "all" if isinstance(node, (Sequence, Choice, Repeat)) else False  # tokens


def character_only_rules(rules: dict[str, Choice]) -> list[str]:
    """Rules made only of characters and other such rules, with no cycle and no token; each comes
    after the rules it refers to."""
    return rules_that_hold(rules, _char_only_need)


class LarkWriter:
    """One translation of a grammar; ``token_id_of`` resolves ``<text>`` tokens (None: not allowed)."""

    def __init__(self, rules: dict[str, Choice], root: str, token_id_of: Callable[[str], int] | None) -> None:
        self.rules = rules
        self.root = root
        self.token_id_of = token_id_of
        # a shape per character-only rule that may be a lexeme, each computed once from those it refers to
        self.rule_shapes: dict[str, Shape] = {}
        lexeme_sizes: dict[str, tuple[int, int]] = {}  # (depth, nodes) of each lexeme rule
        too_big = (_MAX_LEXEME_DEPTH, _MAX_LEXEME_NODES)  # a reference to a rule left out is too big as well
        for name in character_only_rules(rules):
            depth = nesting_depth(rules[name], lambda ref: lexeme_sizes.get(ref, too_big)[0])
            nodes = inlined_size(rules[name], lambda ref: lexeme_sizes.get(ref, too_big)[1])
            if depth < _MAX_LEXEME_DEPTH and nodes < _MAX_LEXEME_NODES:
                lexeme_sizes[name] = (depth, nodes)
                self.rule_shapes[name] = shape(rules[name], self.rule_shapes.__getitem__)
        self.rule_names: dict[str, str] = {}
        self.terminal_names: dict[str, str] = {}
        for index, name in enumerate(rules):
            clean = "".join(c if c.isalnum() else "_" for c in name)
            self.rule_names[name] = f"r{index}_{clean.lower()}"
            self.terminal_names[name] = f"T{index}_{clean.upper()}"
        # rules and terminals to emit, in the order first referred to (the sets: fast membership)
        self.needed_rules: list[str] = [root]
        self.needed_terminals: list[str] = []
        self._needed: dict[str, set[str]] = {"rule": {root}, "terminal": set()}
        self.anonymous: dict[str, str] = {}  # lexeme body -> generated terminal name

    def write(self) -> str:
        lines = [f"start: {self.rule_names[self.root]}"]
        emitted_rules = emitted_terminals = 0
        # writing a rule or terminal may add more needed ones: go on until both lists are done
        while emitted_rules < len(self.needed_rules) or emitted_terminals < len(self.needed_terminals):
            while emitted_rules < len(self.needed_rules):
                name = self.needed_rules[emitted_rules]
                lines.append(f"{self.rule_names[name]}: {self.rule_choice(self.rules[name])}")
                emitted_rules += 1
            while emitted_terminals < len(self.needed_terminals):
                name = self.needed_terminals[emitted_terminals]
                lines.append(f"{self.terminal_names[name]}: {self.terminal(self.rules[name])}")
                emitted_terminals += 1
        lines += [f"{name}: {body}" for body, name in self.anonymous.items()]
        return "\n".join(lines) + "\n"

    def _need(self, kind: str, name: str, needed: list[str]) -> None:
        if name not in self._needed[kind]:
            self._needed[kind].add(name)
            needed.append(name)

    # -- the prefix-free check -------------------------------------------------------------------

    def is_char_only(self, node: Node) -> bool:
        if isinstance(node, (Literal, CharClass)):
            return True
        if isinstance(node, RuleRef):
            return node.name in self.rule_shapes
        return isinstance(node, (Sequence, Choice, Repeat)) and all(self.is_char_only(c) for c in children(node))

    # -- terminal context: one regular expression ------------------------------------------------

    def terminal(self, node: Node) -> str:
        if isinstance(node, Literal):
            return json.dumps(node.text, ensure_ascii=False)
        if isinstance(node, CharClass):
            return _char_class_regex(node)
        if isinstance(node, RuleRef):
            self._need("terminal", node.name, self.needed_terminals)
            return self.terminal_names[node.name]
        if isinstance(node, Sequence):
            return " ".join(_group(self.terminal(item), item) for item in node.items) if node.items else '""'
        if isinstance(node, Choice):
            return " | ".join(self.terminal(alt) for alt in node.alternatives)
        if isinstance(node, Repeat):
            return _repeat(self.terminal(node.node), node)
        raise AssertionError(f"not a character-only node: {node!r}")

    def lexeme(self, node: Node) -> str:
        if isinstance(node, Literal) and len(node.text) > 1:
            # one lexeme per character: "ab" must not beat "a" followed by "b..." (greedy lexing)
            return " ".join(self.terminal(Literal(ch)) for ch in node.text)
        if isinstance(node, (Literal, CharClass, RuleRef)):
            return self.terminal(node)
        body = self.terminal(node)
        if body not in self.anonymous:
            self.anonymous[body] = f"L{len(self.anonymous)}_"
        return self.anonymous[body]

    # -- rule context: prefix-free runs become lexemes, the rest stays context-free --------------

    def rule_choice(self, node: Choice) -> str:
        return " | ".join(self.rule_sequence(alt.items) for alt in node.alternatives)

    def rule_sequence(self, items: tuple[Node, ...]) -> str:
        # the shape of each item that may join a run (None: it may not), computed once per sequence
        shapes = [shape(item, self.rule_shapes.__getitem__)
                  if self.is_char_only(item) and not _refers_to_rules(item) else None for item in items]
        parts: list[str] = []
        i = 0
        while i < len(items):
            end = self._longest_prefix_free_run(items, shapes, i)
            if end > i:
                run = items[i:end]
                parts.append(self.lexeme(run[0] if len(run) == 1 else Sequence(run)))
                i = end
            else:
                parts.append(self.rule_item(items[i]))
                i += 1
        return " ".join(parts) if parts else '""'

    def _longest_prefix_free_run(self, items: tuple[Node, ...], shapes: list[Shape | None], start: int) -> int:
        """The end of the longest run ``items[start:end]`` that may be one lexeme (``start`` if none).

        A run never reaches across a rule reference: a referenced rule is a lexeme of its own or
        nothing. Lexemes glued across rules (``name ws "("``) would compete with the rules' own
        lexemes at the same point (``name``), and greedy lexing would pick the longer one."""
        if isinstance(items[start], RuleRef):
            rule_shape = self.rule_shapes.get(items[start].name)
            return start + 1 if rule_shape is not None and not rule_shape.extensions else start
        end = start
        run = NOTHING  # the shape of items[start:stop], grown one item at a time
        for stop in range(start + 1, min(len(items), start + _MAX_LEXEME_ITEMS) + 1):
            item_shape = shapes[stop - 1]
            if item_shape is None:
                break
            run = concat(run, item_shape)
            if run.extensions == ALL:
                break  # no longer run can be prefix-free again
            if not run.extensions:
                end = stop
        return end

    def rule_item(self, node: Node) -> str:
        """An item that is not a lexeme as a whole: a rule, a token, or a structure to open up."""
        if isinstance(node, RuleRef):
            self._need("rule", node.name, self.needed_rules)
            return self.rule_names[node.name]
        if isinstance(node, TokenRef):
            token_id = node.token
            if isinstance(token_id, str):
                if self.token_id_of is None:
                    raise GrammarError(f"grammar: token {token_id} needs a vocabulary to resolve")
                token_id = self.token_id_of(token_id)
            return f"<[^{token_id}]>" if node.negated else f"<[{token_id}]>"
        if isinstance(node, Choice):
            return f"({self.rule_choice(node)})"
        if isinstance(node, Repeat):
            return _repeat(self.rule_sequence((node.node,)), node)
        if isinstance(node, Sequence):
            return f"({self.rule_sequence(node.items)})"
        raise AssertionError(f"unexpected node {node!r}")


def _refers_to_rules(node: Node) -> bool:
    return isinstance(node, RuleRef) or any(_refers_to_rules(child) for child in children(node))


def _char_class_regex(node: CharClass) -> str:
    ranges = char_class_ranges(node)
    if not ranges:
        return "/[^\\x{0}-\\x{10FFFF}]/"
    body = "".join(f"\\x{{{lo:X}}}" if lo == hi else f"\\x{{{lo:X}}}-\\x{{{hi:X}}}" for lo, hi in ranges)
    return f"/[{body}]/"


def _group(text: str, node: Node) -> str:
    return f"({text})" if isinstance(node, (Choice, Sequence)) else text


def _repeat(inner: str, node: Repeat) -> str:
    inner = f"({inner})"
    if node.max is None:
        return f"{inner}*" if node.min == 0 else f"{inner}+" if node.min == 1 else f"{inner}{{{node.min},}}"
    if (node.min, node.max) == (0, 1):
        return f"{inner}?"
    return f"{inner}{{{node.min},{node.max}}}"
