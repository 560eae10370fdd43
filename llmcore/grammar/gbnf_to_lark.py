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
from llmcore.grammar.gbnf_ast import CharClass, Choice, Literal, Node, Repeat, RuleRef, Sequence, TokenRef
from llmcore.grammar.lexemes import char_class_ranges, shape


def character_only_rules(rules: dict[str, Choice]) -> set[str]:
    """Rules made only of characters and other such rules, with no cycle and no token."""
    verdict: dict[str, bool] = {}
    visiting: set[str] = set()

    def rule_ok(name: str) -> bool:
        if name in verdict:
            return verdict[name]
        if name in visiting:
            return False
        visiting.add(name)
        verdict[name] = result = node_ok(rules[name])
        visiting.discard(name)
        return result

    def node_ok(node: Node) -> bool:
        if isinstance(node, (Literal, CharClass)):
            return True
        if isinstance(node, RuleRef):
            return rule_ok(node.name)
        if isinstance(node, Sequence):
            return all(node_ok(item) for item in node.items)
        if isinstance(node, Choice):
            return all(node_ok(alt) for alt in node.alternatives)
        if isinstance(node, Repeat):
            return node_ok(node.node)
        return False  # tokens

    return {name for name in rules if rule_ok(name)}


class LarkWriter:
    """One translation of a grammar; ``token_id_of`` resolves ``<text>`` tokens (None: not allowed)."""

    def __init__(self, rules: dict[str, Choice], root: str, token_id_of: Callable[[str], int] | None) -> None:
        self.rules = rules
        self.root = root
        self.token_id_of = token_id_of
        self.char_rules = character_only_rules(rules)
        self.rule_names: dict[str, str] = {}
        self.terminal_names: dict[str, str] = {}
        for index, name in enumerate(rules):
            clean = "".join(c if c.isalnum() else "_" for c in name)
            self.rule_names[name] = f"r{index}_{clean.lower()}"
            self.terminal_names[name] = f"T{index}_{clean.upper()}"
        self.needed_rules: list[str] = [root]
        self.needed_terminals: list[str] = []
        self.anonymous: dict[str, str] = {}  # lexeme body -> generated terminal name
        self._prefix_free: dict[Node, bool] = {}

    def write(self) -> str:
        lines = [f"start: {self.rule_names[self.root]}"]
        emitted_rules: set[str] = set()
        emitted_terminals: set[str] = set()
        while len(emitted_rules) < len(self.needed_rules) or len(emitted_terminals) < len(self.needed_terminals):
            for name in self.needed_rules:
                if name not in emitted_rules:
                    emitted_rules.add(name)
                    lines.append(f"{self.rule_names[name]}: {self.rule_choice(self.rules[name])}")
            for name in self.needed_terminals:
                if name not in emitted_terminals:
                    emitted_terminals.add(name)
                    lines.append(f"{self.terminal_names[name]}: {self.terminal(self.rules[name])}")
        lines += [f"{name}: {body}" for body, name in self.anonymous.items()]
        return "\n".join(lines) + "\n"

    # -- the prefix-free check -------------------------------------------------------------------

    def is_char_only(self, node: Node) -> bool:
        if isinstance(node, (Literal, CharClass)):
            return True
        if isinstance(node, RuleRef):
            return node.name in self.char_rules
        if isinstance(node, Sequence):
            return all(self.is_char_only(item) for item in node.items)
        if isinstance(node, Choice):
            return all(self.is_char_only(alt) for alt in node.alternatives)
        if isinstance(node, Repeat):
            return self.is_char_only(node.node)
        return False

    def prefix_free(self, node: Node) -> bool:
        if node not in self._prefix_free:
            result = shape(node, lambda name: self.rules[name])
            self._prefix_free[node] = not result.extensions
        return self._prefix_free[node]

    # -- terminal context: one regular expression ------------------------------------------------

    def terminal(self, node: Node) -> str:
        if isinstance(node, Literal):
            return json.dumps(node.text, ensure_ascii=False)
        if isinstance(node, CharClass):
            return _char_class_regex(node)
        if isinstance(node, RuleRef):
            if node.name not in self.needed_terminals:
                self.needed_terminals.append(node.name)
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
        parts: list[str] = []
        i = 0
        while i < len(items):
            end = self._longest_prefix_free_run(items, i)
            if end > i:
                run = items[i:end]
                parts.append(self.lexeme(run[0] if len(run) == 1 else Sequence(run)))
                i = end
            else:
                parts.append(self.rule_item(items[i]))
                i += 1
        return " ".join(parts) if parts else '""'

    def _longest_prefix_free_run(self, items: tuple[Node, ...], start: int) -> int:
        """The end of the longest run ``items[start:end]`` that may be one lexeme (``start`` if none).

        A run never reaches across a rule reference: a referenced rule is a lexeme of its own or
        nothing. Lexemes glued across rules (``name ws "("``) would compete with the rules' own
        lexemes at the same point (``name``), and greedy lexing would pick the longer one."""
        if isinstance(items[start], RuleRef):
            return start + 1 if self.is_char_only(items[start]) and self.prefix_free(items[start]) else start
        end = start
        while end < len(items) and self.is_char_only(items[end]) and not _refers_to_rules(items[end]):
            end += 1
        for stop in range(end, start, -1):
            run = items[start:stop]
            if self.prefix_free(run[0] if len(run) == 1 else Sequence(run)):
                return stop
        return start

    def rule_item(self, node: Node) -> str:
        """An item that is not a lexeme as a whole: a rule, a token, or a structure to open up."""
        if isinstance(node, RuleRef):
            if node.name not in self.needed_rules:
                self.needed_rules.append(node.name)
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
    if isinstance(node, RuleRef):
        return True
    if isinstance(node, Sequence):
        return any(_refers_to_rules(item) for item in node.items)
    if isinstance(node, Choice):
        return any(_refers_to_rules(alt) for alt in node.alternatives)
    if isinstance(node, Repeat):
        return _refers_to_rules(node.node)
    return False


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
