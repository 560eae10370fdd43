"""Conversation mode and interactive completion of ``llmcore run``, driven in-process with a
scripted console (the terminal itself is exercised in test_conversation_tmux.py).

Oracles: each turn's prompt is the template's rendering of the whole conversation, only the
tokens after the prefix the cache holds are evaluated, and a turn's reply is what the chat API
returns for the same messages.
"""

from __future__ import annotations

import io
import re
import signal
from types import SimpleNamespace

import pytest

from llmcore.cli import build_parser
from llmcore.cli.conversation import Console, Session, conversation_mode, run_session, wanted

PERF = re.compile(r"prompt eval time =\s*[\d.]+ ms /\s*(\d+) tokens")


@pytest.fixture(scope="module")
def llm(default_model_path):
    from llmcore.api import LLM

    return LLM(default_model_path, n_ctx=1024, seed=0)


def run_args(*flags: str):
    return build_parser().parse_args(["run", "-c", "1024", "--temp", "0", *flags])


class Script(Console):
    """A console that types ``inputs`` (an exception class stands for Ctrl+C / Ctrl+D) and,
    once the input ``interrupt_after`` names has been sent, presses Ctrl+C after ``n_pieces``
    pieces of the reply."""

    def __init__(self, inputs: list, interrupt_after: str | None = None, n_pieces: int = 0) -> None:
        super().__init__(color=False, read_line=self._type, out=io.StringIO())
        self.inputs = list(inputs)
        self.interrupt_after = interrupt_after
        self.n_pieces = n_pieces
        self._armed = False
        self._written = 0

    def _type(self, prompt: str) -> str:
        self.out.write(prompt)
        item = self.inputs.pop(0)
        if isinstance(item, type):
            raise item()
        self._armed = item == self.interrupt_after
        self._written = 0
        return item

    def write(self, text: str, color: str | None = None) -> None:
        super().write(text, color)
        if self._armed and text:
            self._written += 1
            if self._written == self.n_pieces:
                self._armed = False
                signal.raise_signal(signal.SIGINT)


class Recording(Session):
    """A session that remembers each generation: its prompt tokens, reply and evaluated tokens."""

    def __init__(self, llm, args, console) -> None:
        from llmcore.api.types import Timings

        super().__init__(llm, args, console, Timings())
        self.turns: list[tuple[list[int], object, int]] = []

    def generate(self, tokens, interactive=True):
        reply = super().generate(tokens, interactive)
        self.turns.append((list(tokens), reply, self.llm.last.timings.prompt_n))
        return reply


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _evaluated_after(cached: list[int], tokens: list[int]) -> int:
    """Tokens eval_prompt must evaluate to bring a cache holding ``cached`` to ``tokens``."""
    return len(tokens) - min(_common_prefix(cached, tokens), len(tokens) - 1)


def test_each_turn_evaluates_only_the_new_tokens(llm):
    llm.reset()
    console = Script(["What is the capital of France?", "And of Italy?", EOFError])
    session = Recording(llm, run_args("-cnv", "-n", "16"), console)
    assert session.chat("") == 0
    (t1, r1, n1), (t2, r2, n2) = session.turns
    assert n1 == len(t1)
    assert t2[:len(t1)] == t1  # the template re-renders the first turn identically
    assert r1.reason == "length"  # cut at -n 16: its last token was sampled, never evaluated
    assert n2 == _evaluated_after(t1 + r1.tokens[:-1], t2)
    assert n2 <= len(t2) - len(t1)  # the whole first prompt was reused
    assert r1.text and r2.text
    assert console.out.getvalue().count("\n> ") == 3  # two turns, then the prompt Ctrl+D answered

    # the first reply is the chat API's for the same question
    llm.reset()
    expected = llm.create_chat_completion([{"role": "user", "content": "What is the capital of France?"}],
                                          max_tokens=16, temperature=0)
    assert r1.text == expected.choices[0].message.content


def test_ctrl_c_cuts_the_reply_and_the_next_turn_is_answered(llm):
    llm.reset()
    story = "Write a long story about a brave knight and a dragon."
    console = Script([story, "What is 2+2?", EOFError], interrupt_after=story, n_pieces=4)
    session = Recording(llm, run_args("-cnv", "-n", "48"), console)
    assert session.chat("") == 0
    (t1, r1, _), (t2, r2, n2) = session.turns
    assert r1.reason == "interrupted"
    assert len(r1.tokens) == 4  # the reply stops where it was when Ctrl+C was pressed
    # the cut reply is closed as a finished assistant turn before the next question
    rendered = b"".join(llm.tokenizer.token_to_piece(t, special=True) for t in t2).decode()
    assert f"{r1.text}<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n" in rendered
    assert n2 == _evaluated_after(t1 + r1.tokens, t2)
    assert r2.reason in ("stop", "length") and r2.text.strip()


def test_a_conversation_outgrowing_the_context_goes_on_with_context_shifts(default_model_path):
    """-c 160 --context-shift: four turns of up to 40 tokens outgrow the context; each turn appends
    its new text to what the cache holds, a full context drops half of what follows --keep (the
    first prompt stays), and every question is answered; without --context-shift the turn that
    does not fit is refused."""
    from llmcore.api import LLM
    from llmcore.errors import LLMCoreError

    small = LLM(default_model_path, n_ctx=160, seed=0)
    questions = ["Name a color.", "Name a fruit.", "Name an animal.", "Name a country."]
    session = Recording(small, run_args("-cnv", "-n", "40", "--ignore-eos", "--context-shift", "--keep", "-1"),
                        Script([*questions, EOFError]))
    assert session.chat("") == 0
    assert len(session.turns) == 4 and all(reply.tokens for _, reply, _ in session.turns)
    assert session._shifted
    first = session.turns[0][0]
    for tokens, _, n_evaluated in session.turns[1:]:
        assert tokens[:len(first)] == first  # the kept first prompt is never dropped
        assert len(tokens) < small.n_ctx
        assert n_evaluated <= len(tokens) - len(first)  # only the new turn is evaluated
    last_prompt = b"".join(small.tokenizer.token_to_piece(t, special=True) for t in session.turns[-1][0]).decode()
    assert last_prompt.endswith("<|im_start|>user\nName a country.<|im_end|>\n<|im_start|>assistant\n")

    small.reset()
    refused = Recording(small, run_args("-cnv", "-n", "40", "--ignore-eos"), Script([*questions, EOFError]))
    with pytest.raises(LLMCoreError, match="context size"):
        refused.chat("")


def test_ctrl_c_at_the_prompt_quits_with_130_and_timings(llm, capsys):
    llm.reset()
    assert run_session(llm, run_args("-cnv", "-n", "4"), "", Script([KeyboardInterrupt])) == 130
    assert "prompt eval time" in capsys.readouterr().err


def test_ctrl_d_ends_the_session_with_0(llm, capsys):
    llm.reset()
    assert run_session(llm, run_args("-cnv", "-n", "4"), "", Script(["Hi", EOFError])) == 0
    assert "eval time" in capsys.readouterr().err


def test_system_prompt_is_evaluated_once_with_a_prompt_cache(llm, tmp_path, capsys):
    system = "You are a pirate. Answer every question like a pirate would, in one short sentence."
    args = run_args("-cnv", "-n", "4", "-sys", system, "--prompt-cache", str(tmp_path / "sys.cache"))
    n_system = len(llm.tokenize(llm.chat_template.render([{"role": "system", "content": system}],
                                                         add_generation_prompt=False), parse_special=True))
    llm.reset()
    assert run_session(llm, args, "", Script([EOFError])) == 0
    assert int(PERF.search(capsys.readouterr().err).group(1)) == n_system
    llm.reset()
    assert run_session(llm, args, "", Script([EOFError])) == 0
    assert int(PERF.search(capsys.readouterr().err).group(1)) == 1  # only the replayed last token


def test_reverse_prompt_stops_the_completion(llm):
    llm.reset()
    console = Script([])
    session = Recording(llm, run_args("-p", "1, 2, 3, 4, 5,", "-r", " 8", "-n", "20"), console)
    assert session.complete("1, 2, 3, 4, 5,") == 0
    (_, reply, _), = session.turns
    assert reply.reason == "reverse_prompt"
    assert reply.text.rstrip(",").endswith(" 8")
    assert console.out.getvalue().startswith("1, 2, 3, 4, 5," + reply.text)


def test_interactive_input_is_wrapped_in_prefix_and_suffix(llm):
    llm.reset()
    console = Script(["9, 10,", EOFError])
    args = run_args("-i", "-p", "1, 2, 3,", "-r", " 5", "-n", "8", "--in-prefix", " Next:", "--in-suffix", " More:")
    session = Recording(llm, args, console)
    assert session.complete("1, 2, 3,") == 0
    (t1, r1, _), (t2, _, n2) = session.turns
    assert r1.reason == "reverse_prompt"
    typed = (llm.tokenize(" Next:", add_special=False, parse_special=True)
             + llm.tokenize("9, 10,", add_special=False)
             + llm.tokenize(" More:", add_special=False, parse_special=True))
    assert t2 == t1 + r1.tokens + typed
    assert n2 == len(typed) + 1  # the reply's last token had not been evaluated yet
    assert " Next:" in console.out.getvalue() and " More:" in console.out.getvalue()


@pytest.mark.parametrize("flags, template, chat", [
    ([], True, True),                                   # llama.cpp's default: a template and no prompt
    (["-p", "Hi"], True, False),                        # a prompt: complete it
    ([], False, False),                                 # no template: complete
    (["-cnv", "-p", "Hi"], False, True),                # forced on
    (["-no-cnv"], True, False),                         # forced off
    (["--in-prefix", "Q:"], True, False),               # prefix/suffix turn the template off
    (["--chat-template", "chatml"], False, True),
])
def test_conversation_mode_choice(flags, template, chat):
    fake = SimpleNamespace(metadata={"tokenizer.chat_template": "{{ x }}"} if template else {})
    assert conversation_mode(run_args(*flags), fake) is chat


def test_one_shot_completion_is_not_a_session():
    fake = SimpleNamespace(metadata={})
    assert not wanted(run_args("-p", "Hi"), fake)
    assert wanted(run_args("-p", "Hi", "-r", "User:"), fake)
    assert wanted(run_args("-p", "Hi", "-i"), fake)


def test_multi_line_input_and_end_of_input():
    console = Script(["first line\\", "second line", "", "half\\", EOFError, EOFError])
    assert console.read("> ") == "first line\nsecond line"
    assert console.read("> ") == ""
    assert console.read("> ") == "half"  # Ctrl+D sends what was typed
    assert console.read("> ") is None
