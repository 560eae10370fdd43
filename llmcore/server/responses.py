"""Response bodies built from a job's events: OpenAI's chat and text completions (whole, or as
stream chunks) and llama-server's native ``/completion``, with per-token probabilities."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from llmcore.api.types import (
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatDelta,
    ChatMessage,
    Completion,
    CompletionChoice,
    Logprobs,
    Timings,
    ToolCall,
    Usage,
)
from llmcore.chat.tools import parse_reply
from llmcore.engine.sampling import CandidateProbs
from llmcore.server.batcher import DoneEvent, Event, TokenEvent
from llmcore.tokenizer import Tokenizer

_MIN_LOGPROB = -9999.0  # what a zero probability is reported as (JSON has no -inf)


def _logprob(p: float) -> float:
    return math.log(p) if p > 0 else _MIN_LOGPROB


def timings_dict(t: Timings) -> dict[str, float]:
    """llama-server's ``timings`` object."""
    return {**t.model_dump(),
            "prompt_per_token_ms": t.prompt_ms / t.prompt_n if t.prompt_n else 0.0,
            "prompt_per_second": t.prompt_per_second,
            "predicted_per_token_ms": t.predicted_ms / t.predicted_n if t.predicted_n else 0.0,
            "predicted_per_second": t.predicted_per_second}


class Responder:
    """Collects a job's events; subclasses shape them as one response or as stream chunks."""

    kind = ""
    done_marker: str | None = "[DONE]"  # the SSE data line that ends a stream (None: none)

    def __init__(self, tokenizer: Tokenizer, model: str, n_top: int = 0) -> None:
        self.tokenizer = tokenizer
        self.meta = {"id": f"{self.kind}-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}
        self.n_top = n_top
        self.text = ""
        self.tokens: list[int] = []
        self.probs: list[tuple[int, CandidateProbs]] = []
        self.done: DoneEvent | None = None

    def add(self, event: Event) -> None:
        if isinstance(event, TokenEvent):
            self.tokens.append(event.token)
            if event.probs is not None:
                self.probs.append((event.token, event.probs))
        elif isinstance(event, DoneEvent):
            self.done = event
        self.text += event.text

    def stream_start(self) -> list[dict[str, Any]]:
        return []

    def stream(self, event: Event) -> list[dict[str, Any]]:
        """The chunks to send for ``event``."""
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        """The whole response, once every event was added."""
        raise NotImplementedError

    def _usage(self) -> Usage:
        d = self.done
        return Usage(prompt_tokens=d.prompt_tokens, completion_tokens=d.completion_tokens,
                     total_tokens=d.prompt_tokens + d.completion_tokens)

    def _piece(self, token: int) -> bytes:
        return self.tokenizer.token_to_piece(token)


class ChatResponder(Responder):
    """``/v1/chat/completions``; ``logprobs`` adds OpenAI's ``logprobs.content`` entries."""

    kind = "chatcmpl"

    def __init__(self, tokenizer: Tokenizer, model: str, n_top: int = 0, logprobs: bool = False,
                 tools: bool = False) -> None:
        super().__init__(tokenizer, model, n_top)
        self.logprobs = logprobs
        self.tools = tools  # the reply is generic tool-call JSON, parsed once complete

    def stream_start(self) -> list[dict[str, Any]]:
        return [self._chunk(ChatDelta(role="assistant", content=""))]

    def stream(self, event: Event) -> list[dict[str, Any]]:
        self.add(event)
        chunks = []
        if not self.tools and (event.text or (isinstance(event, TokenEvent) and event.probs is not None)):
            probs = [(event.token, event.probs)] if isinstance(event, TokenEvent) and event.probs else []
            chunks.append(self._chunk(ChatDelta(content=event.text), probs=probs))
        if isinstance(event, DoneEvent):
            finish_reason = event.finish_reason
            if self.tools:
                message, finish_reason = self._message()
                chunks.append(self._chunk(ChatDelta(content=message.content, tool_calls=message.tool_calls)))
            final = self._chunk(ChatDelta(), finish_reason=finish_reason, usage=self._usage())
            final["timings"] = timings_dict(event.timings)
            chunks.append(final)
        return chunks

    def _message(self) -> tuple[ChatMessage, str | None]:
        if not self.tools:
            return ChatMessage(content=self.text), self.done.finish_reason
        content, calls = parse_reply(self.text)
        if calls:
            return ChatMessage(content=None, tool_calls=[ToolCall(**call) for call in calls]), "tool_calls"
        return ChatMessage(content=content), self.done.finish_reason

    def result(self) -> dict[str, Any]:
        message, finish_reason = self._message()
        choice = ChatCompletionChoice(message=message, finish_reason=finish_reason)
        body = ChatCompletion(**self.meta, choices=[choice], usage=self._usage()).model_dump()
        if self.logprobs:
            body["choices"][0]["logprobs"] = {"content": self._content_logprobs(self.probs)}
        body["timings"] = timings_dict(self.done.timings)
        return body

    def _chunk(self, delta: ChatDelta, *, probs: list[tuple[int, CandidateProbs]] = (), finish_reason=None,
               usage: Usage | None = None) -> dict[str, Any]:
        choice = ChatChunkChoice(delta=delta, finish_reason=finish_reason)
        body = ChatCompletionChunk(**self.meta, choices=[choice], usage=usage).model_dump(exclude_none=True)
        body["choices"][0].setdefault("finish_reason", None)
        if self.logprobs and probs:
            body["choices"][0]["logprobs"] = {"content": self._content_logprobs(probs)}
        return body

    def _content_logprobs(self, probs: list[tuple[int, CandidateProbs]]) -> list[dict[str, Any]]:
        return [{**self._entry(token, p.selected_prob),
                 "top_logprobs": [self._entry(int(t), float(q)) for t, q in zip(p.ids[:self.n_top], p.probs)]}
                for token, p in probs]

    def _entry(self, token: int, prob: float) -> dict[str, Any]:
        piece = self._piece(token)
        return {"token": piece.decode("utf-8", "replace"), "logprob": _logprob(prob), "bytes": list(piece)}


class CompletionResponder(Responder):
    """``/v1/completions``; ``logprobs=N`` adds OpenAI's legacy logprobs with N alternatives."""

    kind = "cmpl"

    def __init__(self, tokenizer: Tokenizer, model: str, n_top: int = 0, logprobs: bool = False) -> None:
        super().__init__(tokenizer, model, n_top)
        self.logprobs = logprobs
        self._offset = 0  # where the next token's text starts in the completion

    def stream(self, event: Event) -> list[dict[str, Any]]:
        start = len(self.probs)
        self.add(event)
        chunks = []
        if event.text or len(self.probs) > start:
            choice = CompletionChoice(text=event.text, logprobs=self._legacy(self.probs[start:]))
            chunks.append(Completion(**self.meta, choices=[choice]).model_dump())
        if isinstance(event, DoneEvent):
            choice = CompletionChoice(text="", finish_reason=event.finish_reason)
            final = Completion(**self.meta, choices=[choice], usage=self._usage()).model_dump()
            final["timings"] = timings_dict(event.timings)
            chunks.append(final)
        return chunks

    def result(self) -> dict[str, Any]:
        choice = CompletionChoice(text=self.text, logprobs=self._legacy(self.probs), finish_reason=self.done.finish_reason)
        body = Completion(**self.meta, choices=[choice], usage=self._usage()).model_dump()
        body["timings"] = timings_dict(self.done.timings)
        return body

    def _legacy(self, probs: list[tuple[int, CandidateProbs]]) -> Logprobs | None:
        if not self.logprobs:
            return None
        out = Logprobs()
        for token, p in probs:
            text = self._piece(token).decode("utf-8", "replace")
            out.tokens.append(text)
            out.token_logprobs.append(_logprob(p.selected_prob))
            out.top_logprobs.append({self._piece(int(t)).decode("utf-8", "replace"): _logprob(float(q))
                                     for t, q in zip(p.ids[:self.n_top], p.probs)})
            out.text_offset.append(self._offset)
            self._offset += len(text)
        return out


class NativeResponder(Responder):
    """llama-server's ``/completion``: ``content``, ``stop``, ``stop_type``, ``timings``, and
    ``completion_probabilities`` when ``n_probs`` > 0 (``prob`` instead of ``logprob`` after sampling)."""

    kind = "cmpl"
    done_marker = None

    def __init__(self, tokenizer: Tokenizer, model: str, n_top: int = 0, post_sampling: bool = False) -> None:
        super().__init__(tokenizer, model, n_top)
        self.post_sampling = post_sampling

    def stream(self, event: Event) -> list[dict[str, Any]]:
        start = len(self.probs)
        self.add(event)
        if isinstance(event, DoneEvent):
            return [{**self._final(), "content": event.text}]
        chunk = {"index": 0, "content": event.text, "tokens": [event.token], "stop": False,
                 "id_slot": -1, "tokens_predicted": len(self.tokens)}
        if self.n_top:
            chunk["completion_probabilities"] = self._probabilities(self.probs[start:])
        return [chunk]

    def result(self) -> dict[str, Any]:
        return self._final()

    def _final(self) -> dict[str, Any]:
        d = self.done
        body = {"index": 0, "content": self.text, "tokens": self.tokens, "id_slot": d.id_slot, "stop": True,
                "model": self.meta["model"], "tokens_predicted": d.completion_tokens,
                "tokens_evaluated": d.prompt_tokens, "tokens_cached": d.tokens_cached, "truncated": d.truncated,
                "stop_type": d.stop_type, "timings": timings_dict(d.timings)}
        if self.n_top:
            body["completion_probabilities"] = self._probabilities(self.probs)
        return body

    def _probabilities(self, probs: list[tuple[int, CandidateProbs]]) -> list[dict[str, Any]]:
        key, top_key = ("prob", "top_probs") if self.post_sampling else ("logprob", "top_logprobs")
        convert = (lambda p: p) if self.post_sampling else _logprob
        return [{**self._entry(token), key: convert(p.selected_prob),
                 top_key: [{**self._entry(int(t)), key: convert(float(q))} for t, q in zip(p.ids, p.probs)]}
                for token, p in probs]

    def _entry(self, token: int) -> dict[str, Any]:
        piece = self._piece(token)
        return {"id": token, "token": piece.decode("utf-8", "replace"), "bytes": list(piece)}
