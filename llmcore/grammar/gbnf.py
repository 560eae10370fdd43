"""llama.cpp's GBNF grammar format: parse and check it (errors carry line and column).

The syntax is ``src/llama-grammar.cpp``'s: rules ``name ::= alternatives`` ending at a newline
(newlines are allowed inside parentheses and after ``|``), ``#`` comments, ``"literals"`` and
``[character classes]`` with ``\\x``/``\\u``/``\\U``/``\\t``/``\\r``/``\\n`` escapes, ``.`` for any
character, groups, ``* + ? {m} {m,} {m,n}`` repetition, and tokens ``<[id]>`` / ``<text>``, negated
with ``!``. Translation to llguidance's Lark is ``llmcore.grammar.gbnf_to_lark``.
"""

from __future__ import annotations

from collections.abc import Callable

from llmcore.grammar.errors import GrammarError
from llmcore.grammar.gbnf_ast import (CharClass, Choice, Literal, Need, Node, Repeat, RuleRef, Sequence, TokenRef,
                                      children, nesting_depth, rules_that_hold)
from llmcore.grammar.gbnf_to_lark import LarkWriter
from llmcore.grammar.lexemes import char_class_ranges

# llama.cpp's MAX_REPETITION_THRESHOLD: a larger minimum is an error, a larger maximum means unbounded.
_MAX_REPETITIONS = 2000
# Our limits on a grammar (llama.cpp has none): far above any grammar of llama.cpp's or a tool
# schema's, low enough that checking and compiling one at the limits takes well under a second.
MAX_GRAMMAR_CHARS = 128 * 1024
MAX_RULES = 4096
MAX_NESTING = 20  # groups and repetitions inside one another (llguidance refuses about 28)
# The rules' nesting depths added up: a bound on how deep the engine's compiler may recurse
# through rules that refer to one another (it overflows its stack on a long chain of them).
MAX_TOTAL_NESTING = 20_000
_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-"}
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "-")


class _Parser:
    """Recursive descent over the GBNF text, mirroring llama_grammar_parser's structure."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.rules: dict[str, Choice] = {}
        self.rule_offsets: dict[str, int] = {}
        self.depth = 0  # groups open at self.pos
        self.total_nesting = 0  # of the rules so far

    # -- errors and whitespace -------------------------------------------------------------------

    def location(self, offset: int) -> str:
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return f"line {line}, column {column}"

    def error(self, message: str, offset: int | None = None) -> GrammarError:
        return GrammarError(f"grammar: {self.location(self.pos if offset is None else offset)}: {message}")

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def skip_space(self, newline_ok: bool) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == "#":
                while self.pos < len(text) and text[self.pos] not in "\r\n":
                    self.pos += 1
            elif ch in " \t" or (newline_ok and ch in "\r\n"):
                self.pos += 1
            else:
                break

    # -- lexical items ---------------------------------------------------------------------------

    def name(self) -> str:
        start = self.pos
        while _is_word_char(self.peek()):
            self.pos += 1
        if self.pos == start:
            raise self.error("expecting a rule name")
        return self.text[start:self.pos]

    def integer(self) -> int:
        start = self.pos
        while self.peek().isascii() and self.peek().isdigit():
            self.pos += 1
        if self.pos == start:
            raise self.error("expecting an integer")
        return int(self.text[start:self.pos])

    def char(self) -> int:
        start = self.pos
        ch = self.peek()
        if not ch:
            raise self.error("unexpected end of input")
        if ch != "\\":
            if 0xD800 <= ord(ch) <= 0xDFFF:  # a lone surrogate (JSON's "\ud800") is no character
                raise self.error(f"U+{ord(ch):04X} is not a Unicode scalar value")
            self.pos += 1
            return ord(ch)
        kind = self.peek(1)
        if kind in _ESCAPES:
            self.pos += 2
            return ord(_ESCAPES[kind])
        if kind in _HEX_DIGITS:
            size = _HEX_DIGITS[kind]
            digits = self.text[self.pos + 2:self.pos + 2 + size]
            if len(digits) != size or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self.error(f"expecting {size} hex digits after \\{kind}", start)
            value = int(digits, 16)
            if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise self.error(f"\\{kind}{digits} is not a Unicode scalar value", start)
            self.pos += 2 + size
            return value
        raise self.error(f"unknown escape \\{kind}", start)

    def token(self) -> TokenRef:
        start = self.pos
        negated = self.peek() == "!"
        if negated:
            self.pos += 1
        if self.peek() != "<":
            raise self.error("expecting '<' after '!'")
        self.pos += 1
        if self.peek() == "[":
            self.pos += 1
            token_id = self.integer()
            if self.peek() != "]" or self.peek(1) != ">":
                raise self.error("expecting ']>' after the token id")
            self.pos += 2
            return TokenRef(token_id, negated, start)
        end = self.text.find(">", self.pos)
        if end < 0 or "\n" in self.text[self.pos:end]:
            raise self.error("expecting '>' to close the token", start)
        text = "<" + self.text[self.pos:end + 1]
        self.pos = end + 1
        return TokenRef(text, negated, start)

    # -- structure -------------------------------------------------------------------------------

    def alternatives(self, nested: bool) -> Choice:
        alternatives = [self.sequence(nested)]
        while self.peek() == "|":
            self.pos += 1
            self.skip_space(True)
            alternatives.append(self.sequence(nested))
        return Choice(tuple(alternatives))

    def sequence(self, nested: bool) -> Sequence:
        items: list[Node] = []
        while self.pos < len(self.text):
            ch = self.peek()
            start = self.pos
            if ch == '"':
                self.pos += 1
                chars = []
                while self.peek() != '"':
                    if not self.peek():
                        raise self.error("unterminated string literal", start)
                    chars.append(chr(self.char()))
                self.pos += 1
                items.append(Literal("".join(chars)))
            elif ch == "[":
                items.append(self.char_class())
            elif ch in "<!":
                items.append(self.token())
            elif _is_word_char(ch):
                items.append(RuleRef(self.name(), start))
            elif ch == "(":
                self.depth += 1
                if self.depth >= MAX_NESTING:  # checked before recursing: no RecursionError
                    raise self.error(f"groups nest deeper than {MAX_NESTING} levels")
                self.pos += 1
                self.skip_space(True)
                group = self.alternatives(True)
                if self.peek() != ")":
                    raise self.error("expecting ')'", self.pos)
                self.pos += 1
                self.depth -= 1
                items.append(group)
            elif ch == ".":
                self.pos += 1
                items.append(CharClass((), True))
            elif ch in "*+?{":
                if not items:
                    raise self.error(f"'{ch}' has no preceding item to repeat")
                items[-1] = self.repetition(items[-1], nested)
                continue  # repetition() already skipped the space after it
            else:
                break
            self.skip_space(nested)
        return Sequence(tuple(items))

    def char_class(self) -> CharClass:
        start = self.pos
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges = []
        while self.peek() != "]":
            if not self.peek():
                raise self.error("unterminated character class", start)
            low = self.char()
            high = low
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                high = self.char()
            if high < low:
                raise self.error(f"character range {chr(low)!r}-{chr(high)!r} is reversed", start)
            ranges.append((low, high))
        self.pos += 1
        return CharClass(tuple(ranges), negated)

    def repetition(self, node: Node, nested: bool) -> Node:
        ch = self.peek()
        self.pos += 1
        if ch == "*":
            repeat = Repeat(node, 0, None)
        elif ch == "+":
            repeat = Repeat(node, 1, None)
        elif ch == "?":
            repeat = Repeat(node, 0, 1)
        else:
            start = self.pos - 1
            self.skip_space(False)
            low = self.integer()
            self.skip_space(False)
            high: int | None = low
            if self.peek() == ",":
                self.pos += 1
                self.skip_space(False)
                high = self.integer() if self.peek().isdigit() else None
                self.skip_space(False)
            if self.peek() != "}":
                raise self.error("expecting '}' to close the repetition")
            self.pos += 1
            if low > _MAX_REPETITIONS:
                raise self.error(f"repetition minimum {low} exceeds {_MAX_REPETITIONS}", start)
            if high is not None and high < low:
                raise self.error(f"repetition maximum {high} is below the minimum {low}", start)
            if high is not None and high > _MAX_REPETITIONS:
                high = None
            repeat = Repeat(node, low, high)
        self.skip_space(nested)
        return repeat

    def grammar(self) -> dict[str, Choice]:
        if len(self.text) > MAX_GRAMMAR_CHARS:
            raise GrammarError(f"grammar: {len(self.text)} characters, more than the limit of {MAX_GRAMMAR_CHARS}")
        self.skip_space(True)
        while self.pos < len(self.text):
            start = self.pos
            name = self.name()
            self.skip_space(False)
            if self.text[self.pos:self.pos + 3] != "::=":
                raise self.error("expecting '::='")
            self.pos += 3
            self.skip_space(True)
            body = self.alternatives(False)
            if self.peek() and self.peek() not in "\r\n":
                raise self.error(f"unexpected {self.peek()!r}: expecting newline or end of rule")
            if name in self.rules:
                raise self.error(f"rule '{name}' is defined twice (first at "
                                 f"{self.location(self.rule_offsets[name])})", start)
            if len(self.rules) == MAX_RULES:
                raise self.error(f"more than {MAX_RULES} rules", start)
            depth = nesting_depth(body)
            if depth > MAX_NESTING:
                raise self.error(f"groups and repetitions nest deeper than {MAX_NESTING} levels", start)
            self.total_nesting += depth
            if self.total_nesting > MAX_TOTAL_NESTING:
                raise self.error(f"the rules' nesting depths add up to more than {MAX_TOTAL_NESTING}", start)
            self.rules[name] = body
            self.rule_offsets[name] = start
            self.skip_space(True)
        return self.rules


def _references(node: Node) -> list[RuleRef]:
    if isinstance(node, RuleRef):
        return [node]
    return [ref for child in children(node) for ref in _references(child)]


def _token_names(node: Node) -> set[str]:
    if isinstance(node, TokenRef):
        return {node.token} if isinstance(node.token, str) else set()
    return set().union(*(_token_names(child) for child in children(node)))


def _productive_need(node: Node) -> Need:
    """What a node needs to match some string (a reference: that its rule does)."""
    if isinstance(node, CharClass):
        return bool(char_class_ranges(node))
    if isinstance(node, Sequence):
        return "all"
    if isinstance(node, Choice):
        return "any"
    if isinstance(node, Repeat):
        return node.min == 0 or "all"
    return True  # literals and tokens


class GbnfGrammar:
    """A parsed, checked GBNF grammar; :meth:`to_lark` gives llguidance's Lark text."""

    def __init__(self, text: str, root: str = "root") -> None:
        parser = _Parser(text)
        self.rules = parser.grammar()
        self.root = root
        for body in self.rules.values():
            for ref in _references(body):
                if ref.name not in self.rules:
                    raise parser.error(f"undefined rule '{ref.name}'", ref.offset)
        if root not in self.rules:
            raise GrammarError(f"grammar: no rule named '{root}' (the start rule)")
        self._check_productive(parser)
        self.token_names = frozenset(set().union(*(_token_names(b) for b in self.rules.values())))

    def _check_productive(self, parser: _Parser) -> None:
        """Refuse a grammar whose start rule can never finish (e.g. ``root ::= "a" root``)."""
        productive = set(rules_that_hold(self.rules, _productive_need))
        if self.root not in productive:
            stuck = [name for name in self.rules if name not in productive]
            named = ", ".join(stuck[:10]) + (f" and {len(stuck) - 10} more" if len(stuck) > 10 else "")
            raise parser.error(f"the grammar matches no string: rule(s) {named} can never finish",
                               parser.rule_offsets[self.root])

    def to_lark(self, token_id_of: Callable[[str], int] | None = None) -> str:
        """The grammar in llguidance's Lark dialect; ``token_id_of`` resolves ``<text>`` tokens to ids."""
        return LarkWriter(self.rules, self.root, token_id_of).write()


