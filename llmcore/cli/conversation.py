"""Interactive ``llmcore run``: a chat through the model's template (conversation mode, ``-cnv``)
or an interactive text completion (``-i``, ``-r``), read from the terminal as llama-completion does.

Keys: Enter sends the input; a line ending in ``\\`` continues on the next line. With a projector
(``--mmproj``), ``/image PATH`` loads a picture for the next message, as llama-mtmd-cli's chat. Ctrl+C stops the
reply being generated and returns to the prompt; the cut reply stays in the conversation as a
finished assistant turn, so the next question is answered normally. A second Ctrl+C while a reply
is being stopped, or a Ctrl+C at the prompt, quits with status 130 after printing the timings (as
llama.cpp does). Ctrl+D on an empty input ends the session with status 0.

Every turn, the whole conversation is rendered and tokenized again; ``LLM.eval_prompt`` reuses
the keys and values of the prefix the cache already holds, so only the new tokens are evaluated.
With ``--context-shift``, once the conversation outgrows the context (or a reply shifted it), a
turn appends only its new text to the tokens the cache holds, and a full context drops half of
what follows the ``--keep`` tokens, as llama-cli does, instead of refusing the turn.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from llmcore.chat import family_template
from llmcore.cli._common import print_timings
from llmcore.cli.sampling_args import sampling_from_args
from llmcore.errors import LLMCoreError

if TYPE_CHECKING:
    import numpy as np

    from llmcore.api.types import Timings
    from llmcore.cli.prompt_cache import PromptCache
    from llmcore.engine import mtmd

# llama.cpp's console colours: the prompt in yellow, what the user types in bold green
PROMPT_COLOR = "\x1b[33m"
USER_COLOR = "\x1b[1m\x1b[32m"
RESET_COLOR = "\x1b[0m"
EXIT_INTERRUPTED = 130  # the status of a process ended by SIGINT, as llama-completion exits


def add_args(parser: argparse.ArgumentParser) -> None:
    """The flags of interactive and conversation mode, named as llama-completion's."""
    g = parser.add_argument_group("interaction")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("-cnv", "--conversation", action="store_true", default=None,
                      help="chat using the chat template (default: on when the model has a chat template "
                           "and no -p/-f is given)")
    mode.add_argument("-no-cnv", "--no-conversation", dest="conversation", action="store_false",
                      help="never use conversation mode: complete text")
    g.add_argument("-i", "--interactive", action="store_true",
                   help="interactive completion: after each generation, wait for more input")
    g.add_argument("-if", "--interactive-first", action="store_true",
                   help="interactive completion that waits for input before generating")
    g.add_argument("-r", "--reverse-prompt", action="append", default=[], metavar="PROMPT",
                   help="stop generating at PROMPT and give control back in interactive mode (repeatable)")
    g.add_argument("--in-prefix", default="", metavar="STRING",
                   help="text put before each user input (interactive completion; turns the chat template off)")
    g.add_argument("--in-suffix", default="", metavar="STRING",
                   help="text put after each user input (interactive completion; turns the chat template off)")
    g.add_argument("-sys", "--system-prompt", default="", metavar="PROMPT",
                   help="system message of the conversation (evaluated once, before the first input)")
    g.add_argument("-co", "--color", nargs="?", const="auto", default="off", choices=("on", "off", "auto"),
                   help="colour the prompt and the user's input (bare --color: when stdout is a terminal)")
    c = parser.add_argument_group("prompt cache")
    c.add_argument("--prompt-cache", metavar="FNAME",
                   help="file keeping the prompt's evaluated state between runs: a later run with the same "
                        "prompt prefix evaluates only the new tokens")
    c.add_argument("--prompt-cache-all", action="store_true",
                   help="save the generated tokens (and, interactively, every turn) in the prompt cache too")
    c.add_argument("--prompt-cache-ro", action="store_true", help="use the prompt cache without updating it")


def prompt_cache(args: argparse.Namespace) -> PromptCache | None:
    """The ``--prompt-cache`` the flags ask for, or None."""
    if not args.prompt_cache:
        return None
    from llmcore.cli.prompt_cache import PromptCache

    return PromptCache(args.prompt_cache, save_all=args.prompt_cache_all, read_only=args.prompt_cache_ro)


def conversation_mode(args: argparse.Namespace, llm: Any) -> bool:
    """Whether to chat: -cnv, or by default when a chat template exists and no prompt is given.
    ``--in-prefix``/``--in-suffix`` turn the chat template off, as in llama.cpp."""
    if args.conversation is False or args.in_prefix or args.in_suffix:
        return False
    if args.conversation:
        return True
    has_template = bool(args.chat_template or llm.metadata.get("tokenizer.chat_template")
                        or family_template(llm.metadata))
    return has_template and not (args.prompt or args.file)


def wanted(args: argparse.Namespace, llm: Any) -> bool:
    """Whether this module runs the session rather than ``run``'s one-shot completion."""
    return conversation_mode(args, llm) or args.interactive or args.interactive_first or bool(args.reverse_prompt)


def run_session(llm: Any, args: argparse.Namespace, prompt: str, console: Console | None = None) -> int:
    """Run a chat or an interactive completion until Ctrl+D (0) or Ctrl+C at the prompt (130)."""
    from llmcore.api.types import Timings

    console = console or Console.for_terminal(args.color)
    session = Session(llm, args, console, Timings(), prompt_cache(args))
    if session.cache:
        session.cache.load(llm)
    chat = conversation_mode(args, llm)
    if args.interactive or args.interactive_first or chat:
        print(_HELP, file=sys.stderr, end="")
    try:
        status = session.chat(prompt) if chat else session.complete(prompt)
    except KeyboardInterrupt:
        console.write("\n")
        status = EXIT_INTERRUPTED
    console.flush()
    print_timings(llm, session.totals)
    return status


_HELP = ("== Running in interactive mode. ==\n"
         " - Press Ctrl+C to stop a reply; Ctrl+C at the prompt quits.\n"
         " - Press Return to send your input; end a line with '\\' to continue on the next one.\n"
         " - Press Ctrl+D on an empty line to end the session.\n"
         " - With --mmproj, /image PATH loads a picture for your next message.\n\n")


class Console:
    """The terminal of a session: writes the model's text, reads the user's (multi-line) input,
    and colours both when asked. ``read_line(prompt)`` is ``input`` unless a test replaces it."""

    def __init__(self, color: bool = False, read_line: Callable[[str], str] = input,
                 out: TextIO | None = None, readline_markers: bool = False) -> None:
        self.color = color
        self.read_line = read_line
        self.out = out or sys.stdout
        self._markers = readline_markers

    @classmethod
    def for_terminal(cls, color: str) -> Console:
        """A console on stdin/stdout, with line editing and history when stdin is a terminal."""
        interactive = sys.stdin.isatty()
        if interactive:
            import readline  # noqa: F401  (imported for its side effect: input() gains line editing)
        use_color = color == "on" or (color == "auto" and sys.stdout.isatty())
        return cls(use_color, input, sys.stdout, readline_markers=interactive)

    def write(self, text: str, color: str | None = None) -> None:
        if color and self.color:
            text = f"{color}{text}{RESET_COLOR}"
        self.out.write(text)
        self.out.flush()

    def flush(self) -> None:
        self.out.flush()

    def read(self, prompt: str) -> str | None:
        """One input after ``prompt``: lines ending in ``\\`` continue it. None at end of input
        (Ctrl+D) with nothing typed; what was typed before an end of input is returned."""
        lines: list[str] = []
        first = prompt
        while True:
            try:
                line = self.read_line(first + self._user_color())
            except EOFError:
                line = None
            finally:
                if self.color:
                    self.write(RESET_COLOR)
            if line is None:
                if not lines:
                    self.write("\n")
                    return None
                break
            first = ""
            if line.endswith("\\"):
                lines.append(line[:-1])
                continue
            lines.append(line)
            break
        return "\n".join(lines)

    def _user_color(self) -> str:
        if not self.color:
            return ""
        # readline must be told which prompt bytes take no room on screen
        return f"\001{USER_COLOR}\002" if self._markers else USER_COLOR


@dataclass
class Reply:
    """What one generation produced and why it stopped."""

    text: str
    tokens: list[int]
    reason: str  # "stop" (end of text), "length" (-n), "reverse_prompt" or "interrupted"


@dataclass
class Session:
    """One interactive run: streams replies to the console and adds up their timings."""

    llm: Any
    args: argparse.Namespace
    console: Console
    totals: Timings
    cache: PromptCache | None = None
    n_keep: int = 0  # tokens after the BOS a context shift keeps: --keep, counted in the first prompt
    _cache_saved: bool = False
    _shifted: bool = False  # a context shift cut the conversation the cache holds: turns append to it

    # -- conversation mode --------------------------------------------------------------------

    def chat(self, first_prompt: str) -> int:
        """Chat until end of input: each turn renders the whole conversation with the template."""
        from llmcore.engine import mtmd

        llm, console = self.llm, self.console
        messages: list[dict[str, str]] = []
        held: tuple[str, list[int]] | None = None  # after a turn: what the cache holds (see _append_turn)
        if self.args.system_prompt:
            messages.append({"role": "system", "content": self.args.system_prompt})
            self._preload(messages)
        pending = first_prompt or None  # -p: the first user message, shown as if typed
        pictures: list[np.ndarray] = []  # the conversation's images, in the order of their markers
        markers = ""  # a marker per image loaded for the next message
        if pending:
            console.write(f"\n> {pending}\n")
        while True:
            if pending is None:
                console.write("\n")
                text = console.read("> ")
            else:
                text, pending = pending, None
            if text is None:
                return 0
            if not text.strip():
                continue
            if text.strip() == "/image" or text.startswith("/image "):
                if self._load_image(text.strip()[len("/image"):].strip(), pictures):
                    markers += mtmd.MEDIA_MARKER
                continue
            messages.append({"role": "user", "content": markers + text})
            markers = ""
            rendered = llm.chat_template.render(messages, add_generation_prompt=True)
            chunks = mtmd.tokenize(llm.tokenizer, llm.projector, rendered, pictures) if pictures else None
            tokens = mtmd.prompt_ids(chunks) if chunks else llm.tokenize(rendered, add_special=True, parse_special=True)
            if held is None and self.args.keep < 0:  # --keep -1: the first prompt stays through every shift
                self.n_keep = max(len(tokens) - llm.tokenizer.add_bos, 0)
            if held is not None and self.args.context_shift and (self._shifted or len(tokens) >= llm.n_ctx):
                if chunks:
                    raise LLMCoreError("context shift is off in a conversation holding images, as in llama.cpp; "
                                       "raise -c/--ctx-size")
                tokens = self._append_turn(held, rendered)
            reply = self.generate(tokens, chunks=chunks) if chunks else self.generate(tokens)
            self._shifted |= llm.last.context_shifts > 0
            # what the cache holds, as text: the prompt and the reply (its tokens, the last perhaps not yet evaluated)
            held = (rendered + reply.text, reply.tokens[llm.last.timings.predicted_n:])
            # a cut reply is closed by the template like any other, so the next turn starts cleanly
            messages.append({"role": "assistant", "content": reply.text})
            console.write("\n")

    def _load_image(self, path: str, pictures: list[np.ndarray]) -> bool:
        """``/image PATH``: decode the picture for the next message; a missing path, a model without a
        projector or a bad image is one line on stderr and the chat goes on."""
        from llmcore.media.image import load_image

        if not path:
            print("error: /image needs a file name", file=sys.stderr)
            return False
        if self.llm.projector is None:
            print("error: this model cannot take images: no multimodal projector is loaded (--mmproj)", file=sys.stderr)
            return False
        try:
            pictures.append(load_image(path))
        except LLMCoreError as error:
            print(f"error: {error}", file=sys.stderr)
            return False
        print(f"{path} image loaded", file=sys.stderr)
        return True

    def _append_turn(self, held: tuple[str, list[int]], rendered: str) -> list[int]:
        """The next prompt as the cache's tokens plus the new turn's: ``held`` is the text the
        cache holds and the reply's tokens not evaluated yet; ``rendered`` the whole conversation.
        A prompt the context cannot hold is made room for by context shifts (llama-cli's n_keep,
        half of the rest dropped)."""
        llm = self.llm
        text, unevaluated = held
        if not rendered.startswith(text):  # the template rewrote an earlier turn: the full rendering
            raise LLMCoreError("the chat template renders the shifted conversation differently; it cannot go on "
                               "after a context shift (raise -c/--ctx-size)")
        new = unevaluated + llm.tokenize(rendered[len(text):], add_special=False, parse_special=True)
        while len(llm.context_tokens) + len(new) >= llm.n_ctx:
            if not llm.shift_context(len(llm.context_tokens), self.n_keep):
                raise LLMCoreError(f"the new turn ({len(new)} tokens) does not fit in the context ({llm.n_ctx}) "
                                   f"beside the {self.n_keep} kept tokens; raise -c/--ctx-size")
            self._shifted = True
        return llm.context_tokens + new

    def _preload(self, messages: list[dict[str, str]]) -> None:
        """Evaluate the system message before the first input (saved to the prompt cache), as
        llama.cpp does; skipped for templates that refuse a conversation without a user turn."""
        from llmcore.chat.errors import ChatTemplateError

        try:
            rendered = self.llm.chat_template.render(messages, add_generation_prompt=False)
        except ChatTemplateError:
            return
        tokens = self.llm.tokenize(rendered, add_special=True, parse_special=True)
        started = time.perf_counter()
        self.llm.eval_prompt(tokens)
        self.totals.prompt_ms += 1e3 * (time.perf_counter() - started)
        self.totals.prompt_n += self.llm.last.timings.prompt_n
        self._save_cache(tokens)

    # -- interactive completion ---------------------------------------------------------------

    def complete(self, prompt: str) -> int:
        """Complete ``prompt``; interactively, then alternate the user's input and more text."""
        llm, args, console = self.llm, self.args, self.console
        interactive = args.interactive or args.interactive_first
        tokens = llm.tokenize(prompt, add_special=True, parse_special=True)
        if args.keep < 0 or args.keep > len(tokens):  # later prompts hold more: --keep counts in this one
            self.n_keep = max(len(tokens) - llm.tokenizer.add_bos, 0)
        else:
            self.n_keep = args.keep
        if prompt and not args.no_display_prompt:
            console.write(prompt, PROMPT_COLOR)
        generate_now = bool(tokens) and not args.interactive_first
        while True:
            if generate_now:
                reply = self.generate(tokens, interactive)
                tokens = llm.context_tokens + reply.tokens[-1:]  # as the cache holds them, after any context shift
                if not interactive:
                    console.write("\n")
                    return 0
                if reply.reason == "stop" and args.reverse_prompt:
                    # at the end of text, llama.cpp writes the first reverse prompt for the user
                    console.write(args.reverse_prompt[0])
                    tokens += llm.tokenize(args.reverse_prompt[0], add_special=False, parse_special=True)
                elif reply.reason == "stop":
                    console.write("\n")
            console.write(args.in_prefix)
            text = console.read("")
            if text is None:
                return 0
            if text:
                console.write(args.in_suffix)
                tokens += (llm.tokenize(args.in_prefix, add_special=False, parse_special=True)
                           + llm.tokenize(text, add_special=False, parse_special=False)
                           + llm.tokenize(args.in_suffix, add_special=False, parse_special=True))
            generate_now = bool(tokens)  # an empty input lets the model go on

    # -- generation ---------------------------------------------------------------------------

    def generate(self, tokens: list[int], interactive: bool = True, chunks: list[mtmd.Chunk] | None = None) -> Reply:
        """Stream the continuation of ``tokens`` until end of text, -n tokens, a reverse prompt or
        Ctrl+C; the tokens whose keys and values were computed stay in the cache. ``chunks``: the
        prompt holds images (``tokens`` are then its :func:`~llmcore.engine.mtmd.prompt_ids`), and
        is not saved to the prompt cache."""
        llm, args = self.llm, self.args
        sampler = llm.sampler(**sampling_from_args(args))
        decoder = llm.tokenizer.stream_decoder()
        text, generated, reason = "", [], None
        slack = 0 if interactive else 2  # llama.cpp's search window for a reverse prompt
        with _StopOnInterrupt(interactive) as interrupt, closing(
                llm.generate_tokens(tokens, sampler, args.n_predict, args.ignore_eos, context_shift=args.context_shift,
                                    n_keep=self.n_keep, chunks=chunks)) as stream:
            for token in stream:
                if interrupt.requested:  # the reply ends where it was when Ctrl+C was pressed
                    reason = "interrupted"
                    break
                generated.append(token)
                piece = decoder.feed(token)
                text += piece
                self.console.write(piece)
                if any(rp and rp in text[-(len(rp) + slack):] for rp in args.reverse_prompt):
                    reason = "reverse_prompt"
                    break
        timings = llm.last.timings
        self.totals.prompt_n += timings.prompt_n
        self.totals.prompt_ms += timings.prompt_ms
        self.totals.predicted_n += timings.predicted_n
        self.totals.predicted_ms += timings.predicted_ms
        if chunks is None:
            self._save_cache(tokens)
        return Reply(text, generated, reason or llm.last.finish_reason or "length")

    def _save_cache(self, prompt_tokens: list[int]) -> None:
        """The first prompt goes to ``--prompt-cache``; with ``--prompt-cache-all``, every turn."""
        if self.cache and (not self._cache_saved or self.cache.save_all):
            self.cache.save(self.llm, prompt_tokens)
            self._cache_saved = True


class _StopOnInterrupt:
    """While a reply is generated interactively, a first Ctrl+C only asks it to stop
    (``requested``); a second one, before the reply stops, raises KeyboardInterrupt as usual.
    Not ``enabled`` (a one-shot completion), Ctrl+C keeps its usual meaning."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.requested = False

    def __enter__(self) -> _StopOnInterrupt:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc_info: object) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)
